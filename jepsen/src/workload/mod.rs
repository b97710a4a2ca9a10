//! The clients that drive the cluster: [`namespaces`] (operator
//! reservations) and [`providers`] (provider registrations and module
//! listings), [`leases`] (heartbeating providers that stop), the shared
//! [`Recorder`], and the retry loop every operation
//! goes through.

pub mod leases;
pub mod namespaces;
pub mod providers;

use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, timeout, Instant};

use tonic::transport::Channel;

use crate::checker::FINAL_PROCESS;
use crate::cluster::Directory;
use crate::history::{Answer, Call, Completion, Op};
use crate::namelist::parse_list;
use crate::runclock::RunClock;

/// A workload, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Namespace reservations.
    Namespaces,
    /// Provider registrations.
    Providers,
    /// Leased providers that heartbeat and stop.
    Leases,
}

impl FromStr for WorkloadKind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "namespaces" => WorkloadKind::Namespaces,
            "providers" => WorkloadKind::Providers,
            "leases" => WorkloadKind::Leases,
            other => {
                bail!("unknown workload {other:?}: expected namespaces, providers, leases or all")
            }
        })
    }
}

/// Parses `namespaces,providers` or `all`.
pub fn parse_workloads(list: &str) -> anyhow::Result<Vec<WorkloadKind>> {
    let all = [
        WorkloadKind::Namespaces,
        WorkloadKind::Providers,
        WorkloadKind::Leases,
    ];
    parse_list(list, &all, "workload")
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

/// How long operations are tried.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// One try (default 3 s).
    pub attempt: Duration,
    /// Every try of one operation (default 8 s).
    pub op: Duration,
}

/// One client's identity and clock, shared by its operations.
pub struct ClientContext {
    /// The client (process) number.
    pub process: u32,
    /// The members.
    pub nodes: Directory,
    /// The client's random choices.
    pub rng: StdRng,
    /// The runner's clock.
    pub clock: RunClock,
    /// How long to try.
    pub patience: Patience,
}

impl ClientContext {
    /// Client `process` of a run seeded with `seed`: its random choices
    /// depend on both.
    pub fn new(
        process: u32,
        nodes: Directory,
        seed: u64,
        clock: RunClock,
        patience: Patience,
    ) -> Self {
        ClientContext {
            process,
            nodes,
            rng: StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(process as u64)),
            clock,
            patience,
        }
    }

    /// Runs one operation: sends it to a random node, then after an error to
    /// the leader hint or the next node, until it answers or its time is up.
    /// `definite` turns the errors that are answers (NOT_FOUND, ...) into
    /// answers. A write never answered is `info`, a read `fail`.
    pub async fn perform<F, Fut>(
        &mut self,
        key: String,
        call: Call,
        serial: u64,
        mut send: F,
        definite: impl Fn(&tonic::Status) -> Option<Answer>,
    ) -> Op
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Answer, tonic::Status>>,
    {
        let mut ids = self.nodes.ids();
        let mut target = ids[self.rng.random_range(0..ids.len())];
        let invoke_ns = self.clock.now_ns();
        let deadline = Instant::now() + self.patience.op;
        let mut attempts = 0;
        let mut node;
        let mut error;
        let completion = loop {
            attempts += 1;
            node = target;
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .min(self.patience.attempt);
            let sent = match self.nodes.channel(node) {
                Some(channel) => timeout(budget, send(channel)).await,
                None => Ok(Err(tonic::Status::unavailable(format!(
                    "node {node} was removed"
                )))),
            };
            ids = self.nodes.ids();
            match sent {
                Ok(Ok(answer)) => break Completion::Ok { answer },
                Ok(Err(status)) => {
                    if let Some(answer) = definite(&status) {
                        break Completion::Ok { answer };
                    }
                    error = format!("{:?}: {}", status.code(), status.message());
                    let hint = orrery_proto::error_detail(&status).map_or(0, |d| d.leader_id);
                    target = if ids.contains(&hint) && hint != node {
                        hint
                    } else {
                        next_after(&ids, node)
                    };
                }
                Err(_) => {
                    error = "timed out".to_string();
                    target = next_after(&ids, node);
                }
            }
            if Instant::now() + Duration::from_millis(100) >= deadline {
                break if call.is_write() {
                    Completion::Info { error }
                } else {
                    Completion::Fail { error }
                };
            }
            sleep(Duration::from_millis(self.rng.random_range(20..100))).await;
        };
        Op {
            index: 0,
            process: self.process,
            key,
            call,
            serial,
            invoke_ns,
            complete_ns: self.clock.now_ns(),
            completion,
            node,
            attempts,
        }
    }

    /// With probability `chance`, when `op` is an acknowledged write, the
    /// same request (key, call, request id serial) to send again, as a
    /// client that missed the answer would: it must get the first answer and
    /// change nothing.
    pub fn replay_of(&mut self, op: &Op, chance: f64) -> Option<(String, Call, u64)> {
        let acknowledged_write = op.call.is_write() && op.answer().is_some();
        (acknowledged_write && self.rng.random_bool(chance))
            .then(|| (op.key.clone(), op.call.clone(), op.serial))
    }

    /// A short random pause between operations.
    pub async fn breathe(&mut self) {
        sleep(Duration::from_millis(self.rng.random_range(0..20))).await;
    }
}

/// A read made after healing, with the runner's times.
pub struct FinalRead<T> {
    /// The node that answered.
    pub node: u64,
    /// When it was sent.
    pub invoke_ns: u64,
    /// When it answered.
    pub complete_ns: u64,
    /// The answer.
    pub value: T,
}

impl<T> FinalRead<T> {
    /// The read as an operation of the final client.
    pub fn op(&self, key: String, call: Call, answer: Answer) -> Op {
        Op {
            index: 0,
            process: FINAL_PROCESS,
            key,
            call,
            serial: 0,
            invoke_ns: self.invoke_ns,
            complete_ns: self.complete_ns,
            completion: Completion::Ok { answer },
            node: self.node,
            attempts: 1,
        }
    }
}

/// Asks the members in turn until one answers `read` (5 s a try), for at
/// most `within`.
pub async fn read_after_healing<T, F, Fut>(
    nodes: &Directory,
    clock: RunClock,
    within: Duration,
    mut read: F,
) -> anyhow::Result<FinalRead<T>>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + within;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        for node in nodes.ids() {
            let Some(channel) = nodes.channel(node) else {
                continue;
            };
            let invoke_ns = clock.now_ns();
            match timeout(Duration::from_secs(5), read(channel)).await {
                Ok(Ok(value)) => {
                    return Ok(FinalRead {
                        node,
                        invoke_ns,
                        complete_ns: clock.now_ns(),
                        value,
                    })
                }
                Ok(Err(status)) => last_error = status.message().to_string(),
                Err(_) => last_error = "timed out".into(),
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
    bail!("no node answered the final linearizable read: {last_error}")
}

/// Waits for every client task (a panicked client has recorded nothing more).
pub async fn join_clients(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// The member after `node` (or the first, when `node` is gone), wrapping
/// around.
fn next_after(ids: &[u64], node: u64) -> u64 {
    match ids.iter().position(|id| *id == node) {
        Some(at) => ids[(at + 1) % ids.len()],
        None => ids[0],
    }
}
