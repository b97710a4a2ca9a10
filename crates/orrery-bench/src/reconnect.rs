//! `reconnect`: how long an SDK provider is without a control stream when the node it
//! is attached to dies. Starts three `orrery node` processes on 127.0.0.1 and one
//! provider (the SDK, in this process) with a static list of them; then, per trial,
//! SIGKILLs the node the provider is attached to, times until the provider is Active on
//! another node with the same connection (its registration untouched), and restarts the
//! killed node on its data. Prints each trial as it ends, and the median.
#![allow(
    clippy::print_stdout,
    reason = "each trial is printed as it ends, on standard output"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use orrery_proto::pb;
use orrery_sdk::client::{Client, ClientConfig};
use orrery_sdk::types::CType;
use orrery_sdk::{ConnectionState, Discovery, Module, ModuleError, Provider, SdkConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The options of the reconnect benchmark.
#[derive(Args, Clone, Debug)]
pub struct ReconnectArgs {
    /// The `orrery` binary the nodes run.
    #[arg(long)]
    pub orrery_bin: PathBuf,
    /// Where the nodes keep their data and logs.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Node `i` listens on 127.0.0.1:`base_port + 20 + i`.
    #[arg(long, default_value_t = 24000)]
    pub base_port: u16,
    /// How many times the provider's node is killed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub trials: u32,
    /// The lease TTL the provider asks for.
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    pub lease_ttl: Duration,
    /// Gives up on a step (a leader, a re-attach, a rejoin) after this long.
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
}

/// Three node processes, killed when dropped.
struct Nodes {
    args: ReconnectArgs,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", u64::from(self.args.base_port) + 20 + id)
    }

    fn addrs(&self) -> Vec<String> {
        (1..=3).map(|id| self.addr(id)).collect()
    }

    fn start(&mut self, id: u64) -> Result<(), String> {
        let initial = (1..=3)
            .map(|i| format!("{i}={}", self.addr(i)))
            .collect::<Vec<_>>()
            .join(",");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.args.data_dir.join(format!("orrery-{id}.log")))
            .map_err(|e| format!("node {id} log: {e}"))?;
        let child = Command::new(&self.args.orrery_bin)
            .args(["node", "--id", &id.to_string(), "--listen", &self.addr(id)])
            .arg("--data-dir")
            .arg(self.args.data_dir.join(format!("orrery-{id}")))
            .args(["--initial-cluster", &initial])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start node {id}: {e}"))?;
        self.children[id as usize - 1] = Some(child);
        Ok(())
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children[id as usize - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
    }
}

/// Runs the benchmark; see the module documentation.
pub async fn run(args: ReconnectArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| e.to_string())?;
    let mut nodes = Nodes {
        args: args.clone(),
        children: (0..3).map(|_| None).collect(),
    };
    for id in 1..=3 {
        nodes.start(id)?;
    }
    let addrs = nodes.addrs();
    wait_for_leader(&addrs, args.timeout).await?;

    let mut config = SdkConfig::new("bench.reconnect", Discovery::Static(addrs.clone()));
    config.lease_ttl = Some(args.lease_ttl);
    let echo = Module::new("echo", "1.0.0", CType::String, CType::String, |v| async {
        Ok::<_, ModuleError>(v)
    });
    let provider = Provider::new(config, vec![echo]).map_err(|e| e.to_string())?;
    let mut state = provider.state();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(provider.run(None, shutdown.clone()));
    let (connection, mut node) = active(&mut state, None, args.timeout).await?;

    println!("# reconnect: SIGKILL the provider's node, time until Active elsewhere");
    println!("# lease TTL {:?}, connection {connection}", args.lease_ttl);
    println!("trial  killed  was_leader  now_on  reattach_ms");
    let mut times = Vec::new();
    for trial in 1..=args.trials {
        let leader = leader_id(&addrs).await;
        nodes.kill(node);
        let killed_at = Instant::now();
        let (now, on) = active(&mut state, Some(node), args.timeout).await?;
        let elapsed = killed_at.elapsed();
        if now != connection {
            return Err(format!(
                "trial {trial}: the provider registered again (connection {now}, was {connection})"
            ));
        }
        let was_leader = if leader == Some(node) { "yes" } else { "no" };
        println!(
            "{trial:<6} {node:<7} {was_leader:<11} {on:<7} {:.1}",
            elapsed.as_secs_f64() * 1e3
        );
        times.push(elapsed);
        nodes.start(node)?;
        wait_for_leader(&[nodes.addr(node)], args.timeout).await?;
        node = on;
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "# median {:.1} ms, max {:.1} ms over {} trials",
        median.as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        times.len()
    );
    shutdown.cancel();
    running
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Waits until the provider is Active on a node other than `not_on`; returns its
/// connection and node.
async fn active(
    state: &mut watch::Receiver<ConnectionState>,
    not_on: Option<u64>,
    timeout: Duration,
) -> Result<(u64, u64), String> {
    let wanted = |s: &ConnectionState| matches!(s, ConnectionState::Active { node, .. } if Some(*node) != not_on);
    match tokio::time::timeout(timeout, state.wait_for(wanted)).await {
        Ok(Ok(s)) => match &*s {
            ConnectionState::Active {
                connection_id,
                node,
                ..
            } => Ok((*connection_id, *node)),
            other => Err(format!("unexpected state {other:?}")),
        },
        Ok(Err(_)) => Err("the provider stopped".into()),
        Err(_) => Err(format!("not Active again within {timeout:?}")),
    }
}

async fn status(addr: &str) -> Option<pb::StatusResponse> {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.timeout = Duration::from_secs(1);
    let client = Client::new(config).ok()?;
    client
        .admin(pb::StatusRequest {}, |mut admin, request| async move {
            admin.status(request).await
        })
        .await
        .ok()
}

/// The leader as the first node of `addrs` that knows one says.
async fn leader_id(addrs: &[String]) -> Option<u64> {
    for addr in addrs {
        if let Some(leader) = status(addr)
            .await
            .map(|s| s.leader_id)
            .filter(|id| *id != 0)
        {
            return Some(leader);
        }
    }
    None
}

/// Waits until one of `addrs` answers and knows a leader.
async fn wait_for_leader(addrs: &[String], timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if leader_id(addrs).await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("no leader within {timeout:?}"))
}
