//! The provider benchmarks: `execute` (calls through a node next to calls
//! straight to the executor), `heartbeats` (many control streams at steady
//! state: Raft entries, false expiries, the leader's CPU) and
//! `registrations` (closed-loop registrations to ACTIVE).

use crate::executor;
use crate::load::{self, deadline, status_line, Caller};
use crate::probe::{self, Nodes};
use crate::provider::{self, Registered, Tally};
use crate::report::{self, ExecuteReport, HeartbeatsReport, ProviderReport, RegistrationsReport};
use crate::{parse_duration, Output};
use clap::Args;
use orrery_proto::pb::module_executor_client::ModuleExecutorClient;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::registry_client::RegistryClient;
use orrery_proto::pb::{
    execute_module_response, execute_response, ExecuteModuleRequest, ExecuteRequest,
    ListProvidersRequest, ReadConsistency, RequestId, Value,
};
use orrery_types::CValue;
use rand::Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

/// The lease TTL the benchmarks register with.
const LEASE_TTL: Duration = Duration::from_secs(5);
/// The heartbeat interval the cluster asks for at that TTL (TTL / 5).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// The input of every call of `upper`.
const INPUT: &str = "hello, orrery";
/// Control streams sharing one HTTP/2 connection (servers cap concurrent
/// streams per connection, commonly at 200).
const STREAMS_PER_CHANNEL: usize = 100;
/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Options shared by the provider benchmarks.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Orrery nodes, `host:port`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// Deadline of one request; a request past it counts as an error.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The options of `execute` and `registrations`.
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent callers, each with its own connection and one call in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9999))]
    pub clients: u32,
    /// The measured period (of each side, for `execute`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Calls before the measured period, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
}

/// The options of `heartbeats`.
#[derive(Args, Clone, Debug)]
pub struct HeartbeatArgs {
    #[command(flatten)]
    pub common: Common,
    /// Provider connections (namespaces `hb<i>_<run>`), each with a control stream.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub providers: u32,
    /// The heartbeat interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The measured window at steady state.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Registrations in flight at a time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// The wait between the last attach and the window (leases of earlier
    /// runs expire in it).
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    pub settle: Duration,
    /// The leader's process id, for its CPU use over the window.
    #[arg(long)]
    pub leader_pid: Option<u32>,
}

/// A fresh random run id: names of this run do not collide with earlier ones.
fn run_id() -> u32 {
    rand::rng().random()
}

fn request_id(client: String, serial: u64) -> RequestId {
    RequestId {
        client_id: client,
        serial,
    }
}

/// A channel per caller, caller `i` to `endpoints[i % n]`.
async fn channels(
    endpoints: &[String],
    count: usize,
    timeout: Duration,
) -> Result<Vec<Channel>, String> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        out.push(load::connect(&endpoints[i % endpoints.len()], timeout).await?);
    }
    Ok(out)
}

/// Checks a call's result: the output must be `INPUT` upper-cased.
fn check_output(output: Option<Value>, expected: &Value) -> Result<(), String> {
    match output {
        Some(value) if value == *expected => Ok(()),
        other => Err(format!("upper answered {other:?}")),
    }
}

/// A caller of `Registry.Execute` through a node.
struct Through {
    client: RegistryClient<Channel>,
    qualified_name: String,
    input: Value,
    expected: Value,
    timeout: Duration,
}

impl Caller for Through {
    async fn call(&mut self) -> Result<(), String> {
        let request = ExecuteModuleRequest {
            qualified_name: self.qualified_name.clone(),
            input: Some(self.input.clone()),
            ..Default::default()
        };
        deadline(self.timeout, async {
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|s| status_line(&s))?
                .into_inner();
            match response.result {
                Some(execute_module_response::Result::Output(v)) => {
                    check_output(Some(v), &self.expected)
                }
                Some(execute_module_response::Result::Error(e)) => {
                    Err(format!("{:?}: {}", e.code(), e.message))
                }
                None => check_output(None, &self.expected),
            }
        })
        .await
    }
}

/// A caller of `ModuleExecutor.Execute` straight at the executor.
struct Direct {
    client: ModuleExecutorClient<Channel>,
    input: Value,
    expected: Value,
    timeout: Duration,
    index: usize,
    seq: u64,
}

impl Caller for Direct {
    async fn call(&mut self) -> Result<(), String> {
        self.seq += 1;
        let request = ExecuteRequest {
            execution_id: format!("direct-{}-{}", self.index, self.seq),
            module: executor::MODULE.to_string(),
            input: Some(self.input.clone()),
            ..Default::default()
        };
        deadline(self.timeout, async {
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|s| status_line(&s))?
                .into_inner();
            match response.result {
                Some(execute_response::Result::Output(v)) => check_output(Some(v), &self.expected),
                Some(execute_response::Result::Error(e)) => {
                    Err(format!("{:?}: {}", e.code(), e.message))
                }
                None => check_output(None, &self.expected),
            }
        })
        .await
    }
}

/// `execute`: registers the executor (namespace `benchexec<run>`), keeps its
/// control stream heartbeating, then measures calls through the nodes and
/// calls straight to the executor, one after the other.
pub async fn execute(args: LoadArgs) -> Result<(), String> {
    let common = &args.common;
    let executor_endpoint = executor::start().await?;
    let run = run_id();
    let namespace = format!("benchexec{run:08x}");
    let mut registrar =
        ProviderServiceClient::new(load::connect(&common.endpoints[0], common.timeout).await?);
    let connection = provider::register(
        &mut registrar,
        request_id(format!("bench-exec-{run:08x}"), 1),
        &namespace,
        &executor_endpoint,
        LEASE_TTL,
        common.timeout,
    )
    .await?;
    let (stop, stopped) = watch::channel(false);
    let tally = Arc::new(Tally::default());
    let control = tokio::spawn({
        let tally = tally.clone();
        async move {
            provider::control(
                registrar,
                connection,
                HEARTBEAT_INTERVAL,
                Duration::ZERO,
                stopped,
                &tally,
            )
            .await
        }
    });

    let input = orrery_types::wire::to_pb(&CValue::String(INPUT.to_string()));
    let expected = orrery_types::wire::to_pb(&CValue::String(INPUT.to_uppercase()));
    let clients = args.clients as usize;
    let qualified_name = format!("{namespace}.{}", executor::MODULE);
    let through: Vec<Through> = channels(&common.endpoints, clients, common.timeout)
        .await?
        .into_iter()
        .map(|channel| Through {
            client: RegistryClient::new(channel),
            qualified_name: qualified_name.clone(),
            input: input.clone(),
            expected: expected.clone(),
            timeout: common.timeout,
        })
        .collect();
    let through = load::measure(through, args.warmup, args.duration).await?;
    through.print_errors("through a node");

    let direct_endpoint = [executor_endpoint];
    let direct: Vec<Direct> = channels(&direct_endpoint, clients, common.timeout)
        .await?
        .into_iter()
        .enumerate()
        .map(|(index, channel)| Direct {
            client: ModuleExecutorClient::new(channel),
            input: input.clone(),
            expected: expected.clone(),
            timeout: common.timeout,
            index,
            seq: 0,
        })
        .collect();
    let direct = load::measure(direct, args.warmup, args.duration).await?;
    direct.print_errors("direct");

    let _ = stop.send(true);
    if let Err(e) = control.await.map_err(|e| e.to_string()).and_then(|r| r) {
        eprintln!("orrery-bench: the executor's control stream failed: {e}");
    }
    let report = ProviderReport::Execute(ExecuteReport {
        clients: args.clients,
        endpoints: common.endpoints.len(),
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        qualified_name,
        through: through.summary(args.duration),
        direct: direct.summary(args.duration),
    });
    report::print_provider(&report, common.output)
}

/// A caller that registers a fresh lone namespace per call, up to ACTIVE.
struct Registrar {
    client: ProviderServiceClient<Channel>,
    executor_endpoint: String,
    run: u32,
    index: usize,
    seq: u64,
    timeout: Duration,
}

impl Caller for Registrar {
    async fn call(&mut self) -> Result<(), String> {
        self.seq += 1;
        let namespace = format!("rg{:08x}x{}x{}", self.run, self.index, self.seq);
        provider::register(
            &mut self.client,
            request_id(
                format!("bench-reg-{:08x}-{}", self.run, self.index),
                self.seq,
            ),
            &namespace,
            &self.executor_endpoint,
            LEASE_TTL,
            self.timeout,
        )
        .await
        .map(drop)
    }
}

/// `registrations`: closed-loop registrations of fresh namespaces, each run
/// to ACTIVE. Nothing heartbeats them: they expire one TTL later.
pub async fn registrations(args: LoadArgs) -> Result<(), String> {
    let common = &args.common;
    let executor_endpoint = executor::start().await?;
    let run = run_id();
    let callers: Vec<Registrar> =
        channels(&common.endpoints, args.clients as usize, common.timeout)
            .await?
            .into_iter()
            .enumerate()
            .map(|(index, channel)| Registrar {
                client: ProviderServiceClient::new(channel),
                executor_endpoint: executor_endpoint.clone(),
                run,
                index,
                seq: 0,
                timeout: common.timeout,
            })
            .collect();
    let measured = load::measure(callers, args.warmup, args.duration).await?;
    measured.print_errors("registration");
    let report = ProviderReport::Registrations(RegistrationsReport {
        clients: args.clients,
        endpoints: common.endpoints.len(),
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        summary: measured.summary(args.duration),
    });
    report::print_provider(&report, common.output)
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // After the command name in parentheses come fields 3 (state) onwards;
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: no field {}", i + 3))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// The leader's id and commit index, as the leader reports them.
async fn leader_commit(nodes: &mut Nodes, endpoints: &[String]) -> Result<(u64, u64), String> {
    let (_, status) = probe::wait_for_leader(nodes, endpoints, Duration::from_secs(10)).await?;
    Ok((probe::node_id(&status), status.commit_index))
}

/// Registers `count` connections, `concurrency` at a time, and starts each
/// one's control stream as soon as it is ACTIVE (its lease runs from
/// there). Returns the connection ids and the control tasks.
async fn register_and_attach(
    args: &HeartbeatArgs,
    run: u32,
    executor_endpoint: &str,
    stopped: &watch::Receiver<bool>,
    tally: &Arc<Tally>,
) -> Result<(Vec<u64>, tokio::task::JoinSet<Result<(), String>>), String> {
    let common = &args.common;
    let count = args.providers as usize;
    let registrars = channels(&common.endpoints, common.endpoints.len(), common.timeout).await?;
    let control_channels = channels(
        &common.endpoints,
        count.div_ceil(STREAMS_PER_CHANNEL),
        common.timeout,
    )
    .await?;
    let next = Arc::new(AtomicUsize::new(0));
    let (registered_tx, mut registered) = mpsc::channel::<(usize, Registered)>(64);
    let mut workers = tokio::task::JoinSet::<Result<(), String>>::new();
    for worker in 0..args.concurrency {
        let (next, registered_tx) = (next.clone(), registered_tx.clone());
        let mut clients: Vec<_> = registrars
            .iter()
            .map(|c| ProviderServiceClient::new(c.clone()))
            .collect();
        let executor_endpoint = executor_endpoint.to_string();
        let timeout = common.timeout;
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                let n = clients.len();
                let connection = provider::register(
                    &mut clients[i % n],
                    request_id(format!("bench-hb-{run:08x}-{worker}"), i as u64 + 1),
                    &format!("hb{i}_{run:08x}"),
                    &executor_endpoint,
                    LEASE_TTL,
                    timeout,
                )
                .await?;
                if registered_tx.send((i, connection)).await.is_err() {
                    return Ok(());
                }
            }
        });
    }
    drop(registered_tx);
    let mut ids = Vec::with_capacity(count);
    let mut controls = tokio::task::JoinSet::new();
    while let Some((i, connection)) = registered.recv().await {
        ids.push(connection.connection_id);
        let client =
            ProviderServiceClient::new(control_channels[i % control_channels.len()].clone());
        let first_after = args.interval.mul_f64(rand::rng().random::<f64>());
        let (interval, stopped, tally) = (args.interval, stopped.clone(), tally.clone());
        controls.spawn(async move {
            provider::control(client, connection, interval, first_after, stopped, &tally).await
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(|e| format!("registration task: {e}"))??;
    }
    Ok((ids, controls))
}

/// `heartbeats`: registers `--providers` connections and keeps a control
/// stream heartbeating for each; over a window at steady state, measures
/// the leader's commit index growth, false expiries and the leader's CPU.
pub async fn heartbeats(args: HeartbeatArgs) -> Result<(), String> {
    let common = &args.common;
    let executor_endpoint = executor::start().await?;
    let run = run_id();
    let (stop, stopped) = watch::channel(false);
    let tally = Arc::new(Tally::default());
    let t_register = Instant::now();
    let (ids, mut controls) =
        register_and_attach(&args, run, &executor_endpoint, &stopped, &tally).await?;
    let registration_s = t_register.elapsed().as_secs_f64();
    let attach_deadline = Instant::now() + common.timeout;
    while Tally::get(&tally.attached) + Tally::get(&tally.ended) < ids.len() as u64
        && Instant::now() < attach_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "orrery-bench: {} connections registered in {registration_s:.1} s, {} attached; \
         settling {:?}",
        ids.len(),
        Tally::get(&tally.attached),
        args.settle
    );
    tokio::time::sleep(args.settle).await;

    let mut nodes = Nodes::default();
    let (leader0, commit0) = leader_commit(&mut nodes, &common.endpoints).await?;
    let cpu0 = args.leader_pid.map(cpu_seconds).transpose()?;
    let (sent0, acked0) = (Tally::get(&tally.sent), Tally::get(&tally.acked));
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    let (leader1, commit1) = leader_commit(&mut nodes, &common.endpoints).await?;
    let cpu1 = args.leader_pid.map(cpu_seconds).transpose()?;
    let window = t0.elapsed().as_secs_f64();
    let (sent1, acked1) = (Tally::get(&tally.sent), Tally::get(&tally.acked));

    let mut registry =
        RegistryClient::new(load::connect(&common.endpoints[0], common.timeout).await?);
    let listed: HashSet<u64> = registry
        .list_providers(ListProvidersRequest {
            consistency: ReadConsistency::Linearizable as i32,
            ..Default::default()
        })
        .await
        .map_err(|s| format!("ListProviders: {}", status_line(&s)))?
        .into_inner()
        .providers
        .iter()
        .map(|p| p.connection_id)
        .collect();
    let missing = ids.iter().filter(|id| !listed.contains(id)).count() as u64;

    let _ = stop.send(true);
    let mut messages = Vec::new();
    while let Some(joined) = controls.join_next().await {
        if let Err(e) = joined.map_err(|e| e.to_string()).and_then(|r| r) {
            if messages.len() < 3 && !messages.contains(&e) {
                messages.push(e);
            }
        }
    }
    for e in &messages {
        eprintln!("orrery-bench: control stream error: {e}");
    }
    let report = ProviderReport::Heartbeats(HeartbeatsReport {
        providers: args.providers,
        registered: ids.len() as u64,
        endpoints: common.endpoints.len(),
        interval_ms: args.interval.as_secs_f64() * 1000.0,
        registration_s,
        window_s: window,
        leader_id: leader0,
        leader_changed: leader0 != leader1,
        raft_entries: commit1.saturating_sub(commit0),
        raft_entries_per_s: commit1.saturating_sub(commit0) as f64 / window,
        heartbeats_per_s: (sent1 - sent0) as f64 / window,
        acks_per_s: (acked1 - acked0) as f64 / window,
        not_renewed: Tally::get(&tally.not_renewed),
        streams_ended: Tally::get(&tally.ended),
        drains: Tally::get(&tally.drains),
        missing,
        leader_cpu_percent: cpu0.zip(cpu1).map(|(a, b)| (b - a) / window * 100.0),
    });
    report::print_provider(&report, common.output)
}
