//! The history of a run: every client operation with the runner's monotonic
//! times of its call and answer, written as JSON lines (`history.jsonl`).
//! Namespace operations use the namespace as their key; provider operations
//! the provider's own namespace, and module listings [`MODULES_KEY`].

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The key of module listings (the prefix every test provider uses).
pub const MODULES_KEY: &str = "jpv";

/// What an operation asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "f")]
pub enum Call {
    /// `ReserveNamespace` for a group.
    Reserve {
        /// The provider group.
        group: String,
    },
    /// `ReleaseNamespace`.
    Release,
    /// `GetNamespace`, recorded as a linearizable read.
    Read,
    /// `ProviderService.Register` of a new provider owning the op's key.
    Register,
    /// `ProviderService.Deregister` of that provider.
    Deregister {
        /// The connection.
        connection_id: u64,
        /// Its generation.
        generation: u64,
    },
    /// `Registry.ListModules` of every test provider's modules.
    ListModules,
    /// A leased provider's life after its registration: control streams
    /// attached and heartbeats sent until the client stops it (the
    /// operation's completion time), after which it must expire.
    Lease {
        /// The connection.
        connection_id: u64,
        /// Its generation.
        generation: u64,
        /// The lease TTL it registered with.
        ttl_ms: u64,
    },
}

impl Call {
    /// Whether the call may change the registry.
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Read | Call::ListModules | Call::Lease { .. })
    }

    /// Whether it belongs to the namespace workload.
    pub fn is_namespace_op(&self) -> bool {
        matches!(self, Call::Reserve { .. } | Call::Release | Call::Read)
    }
}

/// What an operation answered, when it answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Answer {
    /// A read: the group owning the namespace, `None` when NOT_FOUND.
    Owner {
        /// The owning group.
        group: Option<String>,
    },
    /// The reservation holds; `changed` is false when it already did.
    Reserved {
        /// Whether this request made it.
        changed: bool,
    },
    /// NAMESPACE_OWNED: another group holds it.
    OwnedByOther,
    /// The reservation was released; `was` is the group that held it.
    Released {
        /// The group that held it.
        was: String,
    },
    /// NOT_RESERVED: there was nothing to release.
    NotReserved,
    /// The registration committed.
    Registered {
        /// The connection id.
        connection_id: u64,
        /// Its generation.
        generation: u64,
    },
    /// The deregistration committed; `removed` is false when the connection
    /// was already gone.
    Deregistered {
        /// Whether this request removed it.
        removed: bool,
    },
    /// The heartbeats of a lease, in order.
    Heartbeats {
        /// Each heartbeat.
        beats: Vec<Heartbeat>,
    },
    /// A module listing: the namespaces of the test providers whose module
    /// it lists, sorted.
    Modules {
        /// Provider namespaces.
        providers: Vec<String>,
    },
}

/// One heartbeat of a leased provider, with the runner's times.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The node holding the control stream.
    pub node: u64,
    /// When it was sent.
    pub sent_ns: u64,
    /// When its acknowledgement arrived; `None` if none did.
    pub acked_ns: Option<u64>,
    /// `HeartbeatAck.renewed`: whether the node's last renewal of this lease
    /// reached the leader.
    pub renewed: bool,
}

/// How an operation ended, as Jepsen types them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Completion {
    /// It answered.
    Ok {
        /// The answer.
        answer: Answer,
    },
    /// It certainly had no effect (a read that never answered).
    Fail {
        /// The last error.
        error: String,
    },
    /// Unknown: a write that timed out or failed ambiguously on every try; it
    /// may have taken effect, at any time after its call.
    Info {
        /// The last error.
        error: String,
    },
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Its position in the history (order of completion).
    pub index: u64,
    /// The client (worker) that ran it; a client runs one operation at a time.
    pub process: u32,
    /// The namespace.
    pub key: String,
    /// What it asked.
    #[serde(flatten)]
    pub call: Call,
    /// The request id serial (writes), shared by every retry.
    pub serial: u64,
    /// The runner's monotonic nanoseconds since the run started, at the call.
    pub invoke_ns: u64,
    /// The same clock when the answer arrived or the client gave up.
    pub complete_ns: u64,
    /// How it ended.
    pub completion: Completion,
    /// The node of the last try.
    pub node: u64,
    /// How many times it was sent.
    pub attempts: u32,
}

impl Op {
    /// The answer when the operation answered.
    pub fn answer(&self) -> Option<&Answer> {
        match &self.completion {
            Completion::Ok { answer } => Some(answer),
            _ => None,
        }
    }

    /// Whether its outcome is unknown.
    pub fn is_info(&self) -> bool {
        matches!(self.completion, Completion::Info { .. })
    }

    /// Whether it certainly had no effect.
    pub fn is_fail(&self) -> bool {
        matches!(self.completion, Completion::Fail { .. })
    }
}

/// Writes a history as JSON lines.
pub fn write_jsonl(path: &Path, ops: &[Op]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a history written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Op>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut ops = Vec::new();
    for line in file.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            ops.push(serde_json::from_str(&line)?);
        }
    }
    Ok(ops)
}

/// Operations for the checkers' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Answer, Call, Completion, Op};

    /// An operation on `key` by `process`, called and completed at `span`.
    pub(crate) fn op(
        index: u64,
        process: u32,
        span: (u64, u64),
        key: &str,
        call: Call,
        completion: Completion,
    ) -> Op {
        Op {
            index,
            process,
            key: key.into(),
            call,
            serial: index,
            invoke_ns: span.0,
            complete_ns: span.1,
            completion,
            node: 1,
            attempts: 1,
        }
    }

    /// An operation that answered.
    pub(crate) fn answered(
        index: u64,
        process: u32,
        span: (u64, u64),
        key: &str,
        call: Call,
        answer: Answer,
    ) -> Op {
        op(index, process, span, key, call, Completion::Ok { answer })
    }
}
