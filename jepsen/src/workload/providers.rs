//! The provider workload: clients register unique providers (each alone in
//! its own namespace `jpv.c<client>n<n>`, one module `m`), deregister some of
//! them, and list the modules under `jpv` linearizably. The executor every
//! provider names is the runner's own health endpoint on the bridge, which
//! the nodes check before committing a registration.
//!
//! One acknowledged write in five is sent again with the same request id
//! (to a random node), as a client that missed the answer would: the
//! checker requires the same answer and no second effect.
//!
//! Leases are an hour long so that no provider expires during a run: this
//! workload checks the registry's set of providers, not liveness.

use std::net::SocketAddr;
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::registry_client::RegistryClient;
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{join_clients, read_after_healing, ClientContext, Patience, Recorder};
use crate::cluster::Directory;
use crate::history::{Answer, Call, Op, MODULES_KEY};
use crate::net;
use crate::runclock::RunClock;

/// The port of the runner's executor health endpoint.
pub const EXECUTOR_PORT: u16 = 7500;
/// Process numbers of provider clients start here (namespace clients use
/// 0.., lease clients 1000..).
const FIRST_PROCESS: u32 = 100;
/// How often an acknowledged write is sent again with the same request id.
const REPLAY_CHANCE: f64 = 0.2;
/// The lease every test provider asks for.
const LEASE_TTL_MS: u64 = 3_600_000;

/// How the workload runs.
#[derive(Clone, Debug)]
pub struct ProvidersConfig {
    /// Concurrent clients (the run's `--concurrency`, default 8).
    pub concurrency: u32,
    /// How long operations are tried (3 s a try, 8 s in all).
    pub patience: Patience,
    /// Seeds the clients' choices (`--seed`, default 1).
    pub seed: u64,
    /// Listings as sent: `Linearizable`, or `Stale` for the deliberately
    /// broken mode that still records them as linearizable reads.
    pub read_consistency: pb::ReadConsistency,
}

/// Serves `grpc.health.v1.Health` answering SERVING for
/// `orrery.v1.ModuleExecutor` on the runner's bridge address, until the
/// returned task is aborted.
pub async fn start_executor() -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(
            "orrery.v1.ModuleExecutor",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    let addr: SocketAddr = format!("{}:{EXECUTOR_PORT}", net::RUNNER_ADDR).parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    Ok(tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await;
    }))
}

/// Runs the clients until `until`.
pub async fn run(
    nodes: Directory,
    config: ProvidersConfig,
    clock: RunClock,
    until: Instant,
    recorder: Recorder,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for process in (0..config.concurrency).map(|i| FIRST_PROCESS + i) {
        let client = Client {
            context: ClientContext::new(
                process,
                nodes.clone(),
                config.seed,
                clock,
                config.patience,
            ),
            client_id: format!("jepsen-prov-{}-p{process}", config.seed),
            read_consistency: config.read_consistency,
            serial: 0,
            registered: Vec::new(),
        };
        tasks.push(tokio::spawn(client.run(until, recorder.clone())));
    }
    join_clients(tasks).await;
    Ok(())
}

/// One client: runs one operation at a time.
struct Client {
    context: ClientContext,
    client_id: String,
    read_consistency: pb::ReadConsistency,
    serial: u64,
    /// Providers this client registered and has not deregistered:
    /// (namespace, connection id, generation).
    registered: Vec<(String, u64, u64)>,
}

impl Client {
    async fn run(mut self, until: Instant, recorder: Recorder) {
        let mut created = 0u32;
        while Instant::now() < until {
            let choice = self.context.rng.random_range(0..4u32);
            let op = match choice {
                0 if !self.registered.is_empty() => {
                    let at = self.context.rng.random_range(0..self.registered.len());
                    let (key, connection_id, generation) = self.registered.swap_remove(at);
                    let call = Call::Deregister {
                        connection_id,
                        generation,
                    };
                    self.serial += 1;
                    self.write(key, call, self.serial).await
                }
                1 => self.read().await,
                _ => {
                    created += 1;
                    let key = format!("{MODULES_KEY}.c{}n{created}", self.context.process);
                    self.serial += 1;
                    let op = self.write(key.clone(), Call::Register, self.serial).await;
                    if let Some(Answer::Registered {
                        connection_id,
                        generation,
                    }) = op.answer()
                    {
                        self.registered.push((key, *connection_id, *generation));
                    }
                    op
                }
            };
            let replay = self.context.replay_of(&op, REPLAY_CHANCE);
            recorder.push(op);
            if let Some((key, call, serial)) = replay {
                let op = self.write(key, call, serial).await;
                recorder.push(op);
            }
            self.context.breathe().await;
        }
    }

    /// Registers or deregisters with request id `serial`, shared by the
    /// retries.
    async fn write(&mut self, key: String, call: Call, serial: u64) -> Op {
        let request_id = pb::RequestId {
            client_id: self.client_id.clone(),
            serial,
        };
        let send = |channel: Channel| {
            let (key, call, request_id) = (key.clone(), call.clone(), request_id.clone());
            async move { send_write(channel, key, call, request_id, LEASE_TTL_MS).await }
        };
        self.context
            .perform(key.clone(), call.clone(), serial, send, |_| None)
            .await
    }

    /// Lists the test providers' modules.
    async fn read(&mut self) -> Op {
        let consistency = self.read_consistency;
        let send = |channel: Channel| list_modules(channel, consistency);
        self.context
            .perform(MODULES_KEY.to_string(), Call::ListModules, 0, send, |_| {
                None
            })
            .await
    }
}

/// One try of a registration (with a lease of `ttl_ms`) or deregistration.
pub(super) async fn send_write(
    channel: Channel,
    key: String,
    call: Call,
    request_id: pb::RequestId,
    ttl_ms: u64,
) -> Result<Answer, tonic::Status> {
    match call {
        Call::Register => {
            let string = pb::TypeSchema {
                kind: Some(pb::type_schema::Kind::Primitive(
                    pb::PrimitiveType::String as i32,
                )),
            };
            let request = pb::RegisterRequest {
                request_id: Some(request_id),
                namespace: key,
                executor_endpoint: format!("{}:{EXECUTOR_PORT}", net::RUNNER_ADDR),
                modules: vec![pb::ModuleDeclaration {
                    name: "m".into(),
                    version: "1.0.0".into(),
                    input_type: Some(string.clone()),
                    output_type: Some(string),
                    ..Default::default()
                }],
                lease_ttl_ms: ttl_ms,
                ..Default::default()
            };
            let mut providers = ProviderServiceClient::new(channel);
            let mut events = providers.register(request).await?.into_inner();
            while let Some(event) = events.message().await? {
                match event.stage() {
                    pb::RegisterStage::Committed => {
                        return Ok(Answer::Registered {
                            connection_id: event.connection_id,
                            generation: event.generation,
                        })
                    }
                    pb::RegisterStage::Failed => {
                        let detail = event.error.unwrap_or_default();
                        return Err(tonic::Status::unavailable(format!(
                            "registration failed: {:?} {}",
                            detail.code(),
                            detail.message
                        )));
                    }
                    _ => {}
                }
            }
            Err(tonic::Status::unavailable(
                "the registration stream ended early",
            ))
        }
        Call::Deregister {
            connection_id,
            generation,
        } => {
            let response = ProviderServiceClient::new(channel)
                .deregister(pb::DeregisterRequest {
                    request_id: Some(request_id),
                    connection_id,
                    generation,
                })
                .await?
                .into_inner();
            Ok(Answer::Deregistered {
                removed: response.removed,
            })
        }
        other => Err(tonic::Status::internal(format!(
            "{other:?} is not a provider write"
        ))),
    }
}

/// The namespaces of the test providers whose module a listing shows, sorted.
pub(super) async fn list_modules(
    channel: Channel,
    consistency: pb::ReadConsistency,
) -> Result<Answer, tonic::Status> {
    let response = RegistryClient::new(channel)
        .list_modules(pb::ListModulesRequest {
            namespace_prefix: MODULES_KEY.into(),
            consistency: consistency as i32,
        })
        .await?
        .into_inner();
    let mut providers: Vec<String> = response
        .modules
        .into_iter()
        .map(|module| module.namespace)
        .collect();
    providers.sort();
    providers.dedup();
    Ok(Answer::Modules { providers })
}

/// The module listing after healing, as one read of the final client.
pub async fn final_read(
    nodes: &Directory,
    clock: RunClock,
    within: Duration,
) -> anyhow::Result<Op> {
    let read = read_after_healing(nodes, clock, within, |channel| {
        list_modules(channel, pb::ReadConsistency::Linearizable)
    })
    .await?;
    let answer = read.value.clone();
    Ok(read.op(MODULES_KEY.to_string(), Call::ListModules, answer))
}
