//! The namespace ownership workload: concurrent clients reserve, release and
//! read many namespaces through any node. Writes carry a request id and are
//! retried with it after timeouts and errors; a write that never answered is
//! recorded as unknown (`info`), a read that never answered as `fail`.
//!
//! One acknowledged write in ten is sent again with the same request id, as
//! a client that missed the answer would.
//!
//! Namespaces are used for a limited number of operations each and then
//! replaced by fresh ones, which keeps each key's history small enough for
//! the linearizability search.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{join_clients, read_after_healing, ClientContext, Patience, Recorder};
use crate::cluster::Directory;
use crate::history::{Answer, Call, Op};
use crate::runclock::RunClock;

/// How often an acknowledged write is sent again with the same request id.
const REPLAY_CHANCE: f64 = 0.1;
/// The provider groups that compete for namespaces.
const GROUPS: [&str; 3] = ["g1", "g2", "g3"];

/// How the workload runs.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients (default 8).
    pub concurrency: u32,
    /// Namespaces in use at once (default 8).
    pub active_keys: usize,
    /// Operations a namespace gets before it is replaced (default 40).
    pub ops_per_key: u32,
    /// How long operations are tried.
    pub patience: Patience,
    /// Seeds the clients' choices (`--seed`, default 1).
    pub seed: u64,
    /// Reads as sent: `Linearizable`, or `Stale` for the deliberately
    /// broken mode that still records them as linearizable reads.
    pub read_consistency: pb::ReadConsistency,
}

/// The namespaces in use and the ones retired.
struct KeyPool {
    active: Vec<(String, u32)>,
    next: u64,
    per_key: u32,
}

impl KeyPool {
    fn new(active: usize, per_key: u32) -> Self {
        let mut pool = KeyPool {
            active: Vec::new(),
            next: 0,
            per_key,
        };
        for _ in 0..active {
            let key = pool.fresh();
            pool.active.push((key, per_key));
        }
        pool
    }

    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("jns.k{}", self.next)
    }

    /// A namespace for the next operation; replaces it once used up.
    fn pick(&mut self, rng: &mut StdRng) -> String {
        let slot = rng.random_range(0..self.active.len());
        let (key, left) = &mut self.active[slot];
        let chosen = key.clone();
        *left -= 1;
        if *left == 0 {
            let replacement = self.fresh();
            self.active[slot] = (replacement, self.per_key);
        }
        chosen
    }
}

/// Runs the clients until `until`; each finishes its operation in flight.
pub async fn run(
    nodes: Directory,
    config: WorkloadConfig,
    clock: RunClock,
    until: Instant,
    recorder: Recorder,
) {
    let pool = Arc::new(Mutex::new(KeyPool::new(
        config.active_keys,
        config.ops_per_key,
    )));
    let mut tasks = Vec::new();
    for process in 0..config.concurrency {
        let client = Client {
            context: ClientContext::new(
                process,
                nodes.clone(),
                config.seed,
                clock,
                config.patience,
            ),
            client_id: format!("jepsen-{}-p{process}", config.seed),
            read_consistency: config.read_consistency,
            serial: 0,
        };
        let pool = pool.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(client.run(pool, until, recorder)));
    }
    join_clients(tasks).await;
}

/// One client: runs one operation at a time.
struct Client {
    context: ClientContext,
    client_id: String,
    read_consistency: pb::ReadConsistency,
    serial: u64,
}

impl Client {
    async fn run(mut self, pool: Arc<Mutex<KeyPool>>, until: Instant, recorder: Recorder) {
        while Instant::now() < until {
            let rng = &mut self.context.rng;
            let key = pool.lock().expect("pool lock").pick(rng);
            let call = match rng.random_range(0..10u32) {
                0..=3 => Call::Read,
                4..=7 => Call::Reserve {
                    group: GROUPS[rng.random_range(0..GROUPS.len())].to_string(),
                },
                _ => Call::Release,
            };
            let serial = if call.is_write() {
                self.serial += 1;
                self.serial
            } else {
                0
            };
            let op = self.perform(key, call, serial).await;
            let replay = self.context.replay_of(&op, REPLAY_CHANCE);
            recorder.push(op);
            if let Some((key, call, serial)) = replay {
                let op = self.perform(key, call, serial).await;
                recorder.push(op);
            }
            self.context.breathe().await;
        }
    }

    /// Sends one operation with request id `serial` (0 for reads), shared by
    /// its retries.
    async fn perform(&mut self, key: String, call: Call, serial: u64) -> Op {
        let request_id = pb::RequestId {
            client_id: self.client_id.clone(),
            serial,
        };
        let consistency = self.read_consistency;
        let send = |channel: Channel| {
            let client = ClusterAdminClient::new(channel);
            let (key, call, request_id) = (key.clone(), call.clone(), request_id.clone());
            async move { send(client, &key, &call, &request_id, consistency).await }
        };
        let definite = |status: &tonic::Status| definite_answer(status, &call);
        self.context
            .perform(key.clone(), call.clone(), serial, send, definite)
            .await
    }
}

/// One try of an operation.
async fn send(
    mut client: ClusterAdminClient<Channel>,
    key: &str,
    call: &Call,
    request_id: &pb::RequestId,
    consistency: pb::ReadConsistency,
) -> Result<Answer, tonic::Status> {
    match call {
        Call::Reserve { group } => {
            let response = client
                .reserve_namespace(pb::ReserveNamespaceRequest {
                    request_id: Some(request_id.clone()),
                    namespace: key.to_string(),
                    group_id: group.clone(),
                })
                .await?
                .into_inner();
            Ok(Answer::Reserved {
                changed: response.changed,
            })
        }
        Call::Release => {
            let response = client
                .release_namespace(pb::ReleaseNamespaceRequest {
                    request_id: Some(request_id.clone()),
                    namespace: key.to_string(),
                })
                .await?
                .into_inner();
            Ok(Answer::Released {
                was: response.namespace.unwrap_or_default().owner_group,
            })
        }
        Call::Read => {
            let response = client
                .get_namespace(pb::GetNamespaceRequest {
                    namespace: key.to_string(),
                    consistency: consistency as i32,
                })
                .await?
                .into_inner();
            Ok(Answer::Owner {
                group: response.namespace.map(|info| info.owner_group),
            })
        }
        other => Err(tonic::Status::internal(format!(
            "{other:?} is not a namespace call"
        ))),
    }
}

/// The answers that come as gRPC errors but are outcomes, not failures.
fn definite_answer(status: &tonic::Status, call: &Call) -> Option<Answer> {
    let code = orrery_proto::error_detail(status)?.code();
    match (call, code) {
        (Call::Reserve { .. }, pb::ErrorCode::NamespaceOwned) => Some(Answer::OwnedByOther),
        (Call::Release, pb::ErrorCode::NotReserved) => Some(Answer::NotReserved),
        (Call::Read, pb::ErrorCode::NotFound) => Some(Answer::Owner { group: None }),
        _ => None,
    }
}

/// Reads every namespace once, linearizably, after healing: one list, made
/// into one read per namespace in `keys`, all with the list's times.
pub async fn final_reads(
    nodes: &Directory,
    keys: &[String],
    clock: RunClock,
    within: Duration,
) -> anyhow::Result<Vec<Op>> {
    let list = |channel: Channel| {
        let mut client = ClusterAdminClient::new(channel);
        async move {
            let request = pb::ListNamespacesRequest {
                prefix: "jns".into(),
                consistency: pb::ReadConsistency::Linearizable as i32,
            };
            Ok(client.list_namespaces(request).await?.into_inner())
        }
    };
    let read = read_after_healing(nodes, clock, within, list).await?;
    let owners: BTreeMap<String, String> = read
        .value
        .namespaces
        .iter()
        .cloned()
        .map(|info| (info.namespace, info.owner_group))
        .collect();
    Ok(keys
        .iter()
        .map(|key| {
            let answer = Answer::Owner {
                group: owners.get(key).cloned(),
            };
            read.op(key.clone(), Call::Read, answer)
        })
        .collect())
}
