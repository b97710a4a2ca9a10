//! The closed-loop load: clients, their requests, and the measured run.
//!
//! Each client is a tokio task with its own channel (client `i` talks to
//! endpoint `i % endpoints`) and one request in flight. Every client starts
//! at the same instant, once all channels are connected (and, for reads,
//! once the keys are written); requests that start during the warm-up are
//! not counted. A request that starts in the measured period and succeeds
//! is counted and its latency recorded; one that fails is counted as an
//! error, and its client pauses 10 ms before the next request so that a
//! failing cluster is not spun against.

use crate::etcd::pb::{kv_client::KvClient, PutRequest, RangeRequest};
use crate::payload::{self, OrrerySizing};
use crate::report::{self, RunReport, Summary};
use crate::{RunArgs, Target};
use hdrhistogram::Histogram;
use orrery_proto::pb::{
    cluster_admin_client::ClusterAdminClient, GetNamespaceRequest, ReadConsistency, RequestId,
    ReserveNamespaceRequest,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Writes of fresh keys.
    Writes,
    /// Linearizable reads of keys written before the run.
    Reads,
}

impl Op {
    /// The name printed in results.
    pub fn name(self) -> &'static str {
        match self {
            Op::Writes => "writes",
            Op::Reads => "reads",
        }
    }
}

/// Writers used to write the keys of a reads run.
const PRELOAD_WRITERS: usize = 32;
/// The pause of a client after a failed request.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Latencies are recorded in microseconds, up to a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// An error and its sources, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// One line for a failed gRPC call.
pub fn status_line(s: &tonic::Status) -> String {
    let mut out = format!("{:?}: {}", s.code(), s.message());
    if let Some(source) = std::error::Error::source(s) {
        out.push_str(" (");
        out.push_str(&error_chain(source));
        out.push(')');
    }
    out
}

/// Runs `call` with a deadline: past `timeout` it is an error.
pub async fn deadline<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Connects a channel to `endpoint` (`host:port` or a URI).
pub async fn connect(endpoint: &str, timeout: Duration) -> Result<Channel, String> {
    let uri = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Endpoint::from_shared(uri.clone())
        .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {uri}: {}", error_chain(&e)))
}

/// A connected client of either system.
#[derive(Clone)]
pub enum Conn {
    /// Orrery's admin service.
    Orrery(ClusterAdminClient<Channel>),
    /// etcd's KV service.
    Etcd(KvClient<Channel>),
}

impl Conn {
    async fn open(target: Target, endpoint: &str, timeout: Duration) -> Result<Conn, String> {
        let channel = connect(endpoint, timeout).await?;
        Ok(match target {
            Target::Orrery => Conn::Orrery(ClusterAdminClient::new(channel)),
            Target::Etcd => Conn::Etcd(KvClient::new(channel)),
        })
    }
}

/// One client: its connection, its random source and its next write.
struct Client {
    index: usize,
    conn: Conn,
    rng: SmallRng,
    run: u32,
    seq: u64,
    value_size: usize,
    sizing: OrrerySizing,
    timeout: Duration,
}

impl Client {
    fn new(index: usize, conn: Conn, run: u32, args: &RunArgs) -> Client {
        Client {
            index,
            conn,
            rng: SmallRng::from_rng(&mut rand::rng()),
            run,
            seq: 0,
            value_size: args.value_size,
            sizing: OrrerySizing::for_value_size(args.value_size),
            timeout: args.timeout,
        }
    }

    /// Writes the next fresh key; returns its name (the etcd key, the
    /// Orrery namespace).
    async fn write(&mut self) -> Result<String, String> {
        let name = payload::unique_name(self.index, self.seq, self.run);
        self.seq += 1;
        let call = async {
            match &mut self.conn {
                Conn::Orrery(client) => {
                    let namespace =
                        payload::padded_namespace(&name, self.sizing.namespace_len, &mut self.rng);
                    let group_id = payload::random_group(self.sizing.group_len, &mut self.rng);
                    let request = ReserveNamespaceRequest {
                        request_id: Some(RequestId {
                            client_id: format!("bench-{:08x}-{}", self.run, self.index),
                            serial: self.seq,
                        }),
                        namespace: namespace.clone(),
                        group_id,
                    };
                    let response = client
                        .reserve_namespace(request)
                        .await
                        .map_err(|s| status_line(&s))?
                        .into_inner();
                    if !response.changed {
                        return Err(format!("reserving fresh {namespace} changed nothing"));
                    }
                    Ok(namespace)
                }
                Conn::Etcd(client) => {
                    let request = PutRequest {
                        key: name.clone().into_bytes(),
                        value: payload::random_value(self.value_size, &mut self.rng),
                        ..Default::default()
                    };
                    client.put(request).await.map_err(|s| status_line(&s))?;
                    Ok(name)
                }
            }
        };
        deadline(self.timeout, call).await
    }

    /// Reads one of `keys` at random, linearizably.
    async fn read(&mut self, keys: &[String]) -> Result<(), String> {
        let key = &keys[self.rng.random_range(0..keys.len())];
        let call = async {
            match &mut self.conn {
                Conn::Orrery(client) => {
                    let request = GetNamespaceRequest {
                        namespace: key.clone(),
                        consistency: ReadConsistency::Linearizable as i32,
                    };
                    let response = client
                        .get_namespace(request)
                        .await
                        .map_err(|s| status_line(&s))?
                        .into_inner();
                    match response.namespace {
                        Some(info) if info.namespace == *key => Ok(()),
                        _ => Err(format!("GetNamespace({key}) answered another namespace")),
                    }
                }
                Conn::Etcd(client) => {
                    let request = RangeRequest {
                        key: key.clone().into_bytes(),
                        serializable: false,
                        ..Default::default()
                    };
                    let response = client
                        .range(request)
                        .await
                        .map_err(|s| status_line(&s))?
                        .into_inner();
                    if response.kvs.len() == 1 && response.kvs[0].key == key.as_bytes() {
                        Ok(())
                    } else {
                        Err(format!("Range({key}) found {} keys", response.kvs.len()))
                    }
                }
            }
        };
        deadline(self.timeout, call).await
    }
}

/// One closed-loop client: it sends a request, waits for the answer, and
/// sends the next.
pub trait Caller: Send + 'static {
    /// Sends one request and waits for its answer (or its deadline).
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A load client doing one [`Op`].
struct Loaded {
    client: Client,
    op: Op,
    keys: Arc<Vec<String>>,
}

impl Caller for Loaded {
    async fn call(&mut self) -> Result<(), String> {
        match self.op {
            Op::Writes => self.client.write().await.map(drop),
            Op::Reads => self.client.read(&self.keys).await,
        }
    }
}

/// What the clients of a run measured together.
pub struct Measured {
    /// Latencies of the successful requests of the measured period, µs.
    pub histogram: Histogram<u64>,
    /// Successful requests started in the measured period.
    pub ops: u64,
    /// Failed requests started in the measured period.
    pub errors: u64,
    /// Up to three distinct errors (from the warm-up too), for stderr.
    pub messages: Vec<String>,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            histogram: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            ops: 0,
            errors: 0,
            messages: Vec::new(),
        }
    }

    /// Ops/s and latency percentiles over a measured period of `duration`.
    pub fn summary(&self, duration: Duration) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            ops: self.ops,
            ops_per_s: self.ops as f64 / duration.as_secs_f64(),
            errors: self.errors,
            p50_ms: ms(self.histogram.value_at_quantile(0.5)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: ms(self.histogram.value_at_quantile(0.999)),
            max_ms: ms(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1000.0,
        }
    }

    /// Prints the errors kept, each prefixed with `what`.
    pub fn print_errors(&self, what: &str) {
        for message in &self.messages {
            eprintln!("orrery-bench: {what} error: {message}");
        }
    }
}

async fn drive<C: Caller>(
    mut caller: C,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Measured {
    let mut result = Measured::new();
    tokio::time::sleep_until(start).await;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let outcome = caller.call().await;
        let measured = t0 >= measure_from;
        match outcome {
            Ok(()) if measured => {
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                result
                    .histogram
                    .saturating_record(us.clamp(1, MAX_LATENCY_US));
                result.ops += 1;
            }
            Ok(()) => {}
            Err(e) => {
                if measured {
                    result.errors += 1;
                }
                if result.messages.is_empty() {
                    result.messages.push(e);
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    result
}

/// Runs `callers` closed loop, all starting at the same instant: a
/// `warmup` whose requests are not counted, then a measured `duration`.
/// Callers stop starting requests at its end; the last ones finish after it.
pub async fn measure<C: Caller>(
    callers: Vec<C>,
    warmup: Duration,
    duration: Duration,
) -> Result<Measured, String> {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for caller in callers {
        tasks.spawn(drive(caller, start, measure_from, end));
    }
    let mut total = Measured::new();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| format!("client task: {e}"))?;
        total
            .histogram
            .add(&result.histogram)
            .map_err(|e| format!("merging histograms: {e}"))?;
        total.ops += result.ops;
        total.errors += result.errors;
        for e in result.messages {
            if !total.messages.contains(&e) && total.messages.len() < 3 {
                total.messages.push(e);
            }
        }
    }
    Ok(total)
}

/// Opens one connection per client, endpoint `i % n` for client `i`.
async fn open_all(args: &RunArgs, count: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let endpoint = &args.endpoints[i % args.endpoints.len()];
        conns.push(Conn::open(args.target, endpoint, args.timeout).await?);
    }
    Ok(conns)
}

/// Writes `args.keys` keys with [`PRELOAD_WRITERS`] writers; returns them.
async fn preload(args: &RunArgs, run: u32) -> Result<Vec<String>, String> {
    let total = args.keys as usize;
    let writers = PRELOAD_WRITERS.min(total);
    let conns = open_all(args, writers).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for (index, conn) in conns.into_iter().enumerate() {
        let mut client = Client::new(index, conn, run, args);
        let count = total / writers + usize::from(index < total % writers);
        tasks.spawn(async move {
            let mut keys = Vec::with_capacity(count);
            let mut failures = 0;
            while keys.len() < count {
                match client.write().await {
                    Ok(key) => keys.push(key),
                    Err(e) if failures < 10 => {
                        failures += 1;
                        eprintln!("orrery-bench: preload write failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(format!("cannot write the keys to read: {e}")),
                }
            }
            Ok(keys)
        });
    }
    let mut keys = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        keys.extend(joined.map_err(|e| format!("preload task: {e}"))??);
    }
    Ok(keys)
}

/// Runs one measured load and prints its result.
pub async fn run(op: Op, args: RunArgs) -> Result<(), String> {
    let run: u32 = rand::rng().random();
    let keys = Arc::new(match op {
        Op::Writes => Vec::new(),
        Op::Reads => preload(&args, run.wrapping_add(1)).await?,
    });
    let clients = args.clients as usize;
    let conns = open_all(&args, clients).await?;
    let callers = conns
        .into_iter()
        .enumerate()
        .map(|(index, conn)| Loaded {
            client: Client::new(index, conn, run, &args),
            op,
            keys: keys.clone(),
        })
        .collect();
    let measured = measure(callers, args.warmup, args.duration).await?;
    measured.print_errors(args.target_name());
    let report = RunReport {
        target: args.target,
        op: op.name().to_string(),
        clients: args.clients,
        endpoints: args.endpoints.len(),
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        value_size: args.value_size,
        summary: measured.summary(args.duration),
        keys: (op == Op::Reads).then_some(keys.len()),
        payload: describe(op, &args),
    };
    report::print_run(&report, args.output)
}

fn describe(op: Op, args: &RunArgs) -> String {
    let writes = payload::describe_writes(args.target == Target::Orrery, args.value_size);
    match (op, args.target) {
        (Op::Writes, _) => writes,
        (Op::Reads, Target::Orrery) => format!(
            "orrery read = GetNamespace(consistency LINEARIZABLE) of a random one of {} keys \
             written first; {writes}",
            args.keys
        ),
        (Op::Reads, Target::Etcd) => format!(
            "etcd read = Range(key, serializable=false: linearizable) of a random one of {} \
             keys written first; {writes}",
            args.keys
        ),
    }
}

impl RunArgs {
    fn target_name(&self) -> &'static str {
        match self.target {
            Target::Orrery => "orrery",
            Target::Etcd => "etcd",
        }
    }
}
