//! The namespace ownership workload: concurrent clients reserve, release and
//! read many namespaces through any node. Writes carry a request id and are
//! retried with it after timeouts and errors; a write that never answered is
//! recorded as unknown (`info`), a read that never answered as `fail`.
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
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, timeout, Instant};
use tonic::transport::Channel;

use crate::checker::FINAL_PROCESS;
use crate::history::{Completion, NsAnswer, NsCall, Op};
use crate::runclock::RunClock;

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
    /// How long one try may take (default 3 s).
    pub attempt_timeout: Duration,
    /// How long an operation is retried before it is given up (default 8 s).
    pub op_timeout: Duration,
    /// Seeds the clients' choices.
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

/// The history being recorded, shared by the clients.
#[derive(Clone, Default)]
pub struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    /// Appends an operation, numbering it.
    pub fn push(&self, mut op: Op) {
        let mut ops = self.ops.lock().expect("recorder lock");
        op.index = ops.len() as u64;
        ops.push(op);
    }

    /// Everything recorded.
    pub fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().expect("recorder lock"))
    }
}

/// Runs the clients until `until`; each finishes its operation in flight.
pub async fn run(
    clients: BTreeMap<u64, ClusterAdminClient<Channel>>,
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
            nodes: clients.clone(),
            config: config.clone(),
            clock,
            process,
            rng: StdRng::seed_from_u64(
                config.seed.wrapping_mul(1_000).wrapping_add(process as u64),
            ),
            serial: 0,
        };
        let pool = pool.clone();
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(client.run(pool, until, recorder)));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// One client: runs one operation at a time.
struct Client {
    nodes: BTreeMap<u64, ClusterAdminClient<Channel>>,
    config: WorkloadConfig,
    clock: RunClock,
    process: u32,
    rng: StdRng,
    serial: u64,
}

impl Client {
    async fn run(mut self, pool: Arc<Mutex<KeyPool>>, until: Instant, recorder: Recorder) {
        while Instant::now() < until {
            let key = pool.lock().expect("pool lock").pick(&mut self.rng);
            let call = match self.rng.random_range(0..10u32) {
                0..=3 => NsCall::Read,
                4..=7 => NsCall::Reserve {
                    group: GROUPS[self.rng.random_range(0..GROUPS.len())].to_string(),
                },
                _ => NsCall::Release,
            };
            let op = self.perform(key, call).await;
            recorder.push(op);
            let pause = self.rng.random_range(0..20u64);
            sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Sends one operation, retrying with the same request id until it
    /// answers or its time is up.
    async fn perform(&mut self, key: String, call: NsCall) -> Op {
        self.serial += 1;
        let request_id = pb::RequestId {
            client_id: format!("jepsen-{}-p{}", self.config.seed, self.process),
            serial: self.serial,
        };
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let mut target = ids[self.rng.random_range(0..ids.len())];
        let invoke_ns = self.clock.now_ns();
        let deadline = Instant::now() + self.config.op_timeout;
        let mut attempts = 0;
        let mut node;
        let mut error;
        loop {
            attempts += 1;
            node = target;
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .min(self.config.attempt_timeout);
            let sent = send(
                self.nodes[&node].clone(),
                &key,
                &call,
                &request_id,
                self.config.read_consistency,
            );
            match timeout(budget, sent).await {
                Ok(Ok(answer)) => {
                    return self.op(
                        key,
                        call,
                        invoke_ns,
                        Completion::Ok { answer },
                        node,
                        attempts,
                    )
                }
                Ok(Err(status)) => {
                    if let Some(answer) = definite_answer(&status, &call) {
                        let completion = Completion::Ok { answer };
                        return self.op(key, call, invoke_ns, completion, node, attempts);
                    }
                    error = format!("{:?}: {}", status.code(), status.message());
                    let hint = orrery_proto::error_detail(&status).map_or(0, |d| d.leader_id);
                    target = if self.nodes.contains_key(&hint) && hint != node {
                        hint
                    } else {
                        next_after(&ids, node)
                    };
                }
                Err(_) => {
                    error = "timed out".into();
                    target = next_after(&ids, node);
                }
            }
            if Instant::now() + Duration::from_millis(100) >= deadline {
                break;
            }
            sleep(Duration::from_millis(self.rng.random_range(20..100))).await;
        }
        let completion = if call.is_write() {
            Completion::Info { error }
        } else {
            Completion::Fail { error }
        };
        self.op(key, call, invoke_ns, completion, node, attempts)
    }

    fn op(
        &self,
        key: String,
        call: NsCall,
        invoke_ns: u64,
        completion: Completion,
        node: u64,
        attempts: u32,
    ) -> Op {
        Op {
            index: 0,
            process: self.process,
            key,
            serial: if call.is_write() { self.serial } else { 0 },
            call,
            invoke_ns,
            complete_ns: self.clock.now_ns(),
            completion,
            node,
            attempts,
        }
    }
}

/// The node after `node`, wrapping around.
fn next_after(ids: &[u64], node: u64) -> u64 {
    let at = ids.iter().position(|id| *id == node).unwrap_or(0);
    ids[(at + 1) % ids.len()]
}

/// One try of an operation.
async fn send(
    mut client: ClusterAdminClient<Channel>,
    key: &str,
    call: &NsCall,
    request_id: &pb::RequestId,
    consistency: pb::ReadConsistency,
) -> Result<NsAnswer, tonic::Status> {
    match call {
        NsCall::Reserve { group } => {
            let response = client
                .reserve_namespace(pb::ReserveNamespaceRequest {
                    request_id: Some(request_id.clone()),
                    namespace: key.to_string(),
                    group_id: group.clone(),
                })
                .await?
                .into_inner();
            Ok(NsAnswer::Reserved {
                changed: response.changed,
            })
        }
        NsCall::Release => {
            let response = client
                .release_namespace(pb::ReleaseNamespaceRequest {
                    request_id: Some(request_id.clone()),
                    namespace: key.to_string(),
                })
                .await?
                .into_inner();
            Ok(NsAnswer::Released {
                was: response.namespace.unwrap_or_default().owner_group,
            })
        }
        NsCall::Read => {
            let response = client
                .get_namespace(pb::GetNamespaceRequest {
                    namespace: key.to_string(),
                    consistency: consistency as i32,
                })
                .await?
                .into_inner();
            Ok(NsAnswer::Owner {
                group: response.namespace.map(|info| info.owner_group),
            })
        }
    }
}

/// The answers that come as gRPC errors but are outcomes, not failures.
fn definite_answer(status: &tonic::Status, call: &NsCall) -> Option<NsAnswer> {
    let code = orrery_proto::error_detail(status)?.code();
    match (call, code) {
        (NsCall::Reserve { .. }, pb::ErrorCode::NamespaceOwned) => Some(NsAnswer::OwnedByOther),
        (NsCall::Release, pb::ErrorCode::NotReserved) => Some(NsAnswer::NotReserved),
        (NsCall::Read, pb::ErrorCode::NotFound) => Some(NsAnswer::Owner { group: None }),
        _ => None,
    }
}

/// Reads every namespace once, linearizably, after healing: one list, made
/// into one read per namespace in `keys`, all with the list's times.
pub async fn final_reads(
    clients: &BTreeMap<u64, ClusterAdminClient<Channel>>,
    keys: &[String],
    clock: RunClock,
    within: Duration,
) -> anyhow::Result<Vec<Op>> {
    let deadline = Instant::now() + within;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        for (&node, client) in clients {
            let mut client = client.clone();
            let invoke_ns = clock.now_ns();
            let request = pb::ListNamespacesRequest {
                prefix: "jns".into(),
                consistency: pb::ReadConsistency::Linearizable as i32,
            };
            match timeout(Duration::from_secs(5), client.list_namespaces(request)).await {
                Ok(Ok(response)) => {
                    let complete_ns = clock.now_ns();
                    let owners: BTreeMap<String, String> = response
                        .into_inner()
                        .namespaces
                        .into_iter()
                        .map(|info| (info.namespace, info.owner_group))
                        .collect();
                    return Ok(keys
                        .iter()
                        .map(|key| Op {
                            index: 0,
                            process: FINAL_PROCESS,
                            key: key.clone(),
                            call: NsCall::Read,
                            serial: 0,
                            invoke_ns,
                            complete_ns,
                            completion: Completion::Ok {
                                answer: NsAnswer::Owner {
                                    group: owners.get(key).cloned(),
                                },
                            },
                            node,
                            attempts: 1,
                        })
                        .collect());
                }
                Ok(Err(status)) => last_error = status.message().to_string(),
                Err(_) => last_error = "timed out".into(),
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("no node answered the final linearizable read: {last_error}")
}
