//! What the SDK tests share: a three-node cluster on 127.0.0.1, .2 and .3
//! (one port for all, as A-record discovery needs), providers running in
//! tasks, waits on their state, and callers pinned to one node.

use std::time::Duration;

use orrery_proto::pb;
use orrery_sdk::client::{Client, ClientConfig};
use orrery_sdk::types::CValue;
use orrery_sdk::{ConnectionState, Discovery, Module, ModuleError, Provider, SdkConfig, SdkError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dns::DnsServer;
use crate::support::{free_ports_on, NodeCluster, PATIENCE};

/// The node addresses' hosts: node `i + 1` listens on `IPS[i]`.
pub const IPS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

/// The lease the test providers ask for: short, so that an expiry would
/// happen within the tests' waits.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// Three node processes, one per address of [`IPS`], all on one port, with
/// a leader elected.
pub fn three_nodes() -> (NodeCluster, u16) {
    let port = free_ports_on(&IPS, 1);
    let cluster = NodeCluster::start(IPS.iter().map(|ip| format!("{ip}:{port}")).collect());
    cluster.leader();
    (cluster, port)
}

/// `String -> String`, upper-casing.
pub fn upper() -> Module {
    Module::typed("upper", "1.0.0", |s: String| async move {
        Ok::<_, ModuleError>(s.to_uppercase())
    })
    .description("Upper-cases its input")
}

/// A provider config for the tests: short lease, quick backoff.
pub fn config(namespace: &str, discovery: Discovery) -> SdkConfig {
    let mut config = SdkConfig::new(namespace, discovery);
    config.lease_ttl = Some(LEASE_TTL);
    config.reconnect_backoff = Duration::from_millis(50);
    config.reconnect_backoff_cap = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// [`config`] finding the nodes by the A records of `nodes.orrery.test` on
/// `dns`, at `port`.
pub fn by_dns_a(namespace: &str, dns: &DnsServer, port: u16) -> SdkConfig {
    let mut config = config(
        namespace,
        Discovery::DnsA {
            name: "nodes.orrery.test".into(),
            port,
        },
    );
    config.dns_server = Some(dns.addr);
    config
}

/// A provider running in a task.
pub struct Running {
    /// Its state.
    pub state: watch::Receiver<ConnectionState>,
    /// Cancels it.
    pub shutdown: CancellationToken,
    /// What `run` returned.
    pub task: JoinHandle<Result<(), SdkError>>,
}

impl Running {
    /// Starts `modules` under `config` on a loopback listener.
    pub fn start(config: SdkConfig, modules: Vec<Module>) -> Running {
        let provider = Provider::new(config, modules).expect("a valid provider");
        let state = provider.state();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(provider.run(None, shutdown.clone()));
        Running {
            state,
            shutdown,
            task,
        }
    }

    /// Waits (at most [`PATIENCE`]) for a state that `accept` takes, and
    /// returns it.
    pub async fn wait_for(
        &mut self,
        what: &str,
        accept: impl FnMut(&ConnectionState) -> bool,
    ) -> ConnectionState {
        let waited = tokio::time::timeout(PATIENCE, self.state.wait_for(accept))
            .await
            .map(|state| state.map(|s| s.clone()));
        match waited {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => panic!("the provider stopped before {what}"),
            Err(_) => panic!(
                "timed out waiting for {what}; state {:?}",
                *self.state.borrow()
            ),
        }
    }

    /// Waits for `Active` and returns `(connection_id, node)`.
    pub async fn active(&mut self) -> (u64, u64) {
        match self.wait_for("Active", ConnectionState::is_active).await {
            ConnectionState::Active {
                connection_id,
                node,
                ..
            } => (connection_id, node),
            other => unreachable!("{other:?}"),
        }
    }

    /// Cancels the provider and returns what `run` returned.
    pub async fn stop(self) -> Result<(), SdkError> {
        self.shutdown.cancel();
        self.finished().await
    }

    /// What `run` returned, waiting at most [`PATIENCE`].
    pub async fn finished(self) -> Result<(), SdkError> {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("run ends in time")
            .expect("run does not panic")
    }
}

/// A caller that talks to `addr` only.
pub fn caller(addr: &str) -> Client {
    let mut config = ClientConfig::new(vec![addr.to_string()]);
    config.timeout = Duration::from_secs(5);
    Client::new(config).unwrap()
}

/// Calls `module` with `input` through `addr` until it answers (a follower
/// may learn of a registration one replication round late), at most
/// [`PATIENCE`].
pub async fn execute_eventually(addr: &str, module: &str, input: CValue) -> CValue {
    execute_eventually_with(&caller(addr), module, input).await
}

/// As [`execute_eventually`], through `client`.
pub async fn execute_eventually_with(client: &Client, module: &str, input: CValue) -> CValue {
    let start = std::time::Instant::now();
    loop {
        match client.execute(module, input.clone()).await {
            Ok(output) => return output,
            Err(e) => assert!(
                start.elapsed() < PATIENCE,
                "{module} via {} never answered: {e}",
                client.current_endpoint()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The connections serving namespace `namespace`, read linearizably through
/// any of `addrs`.
pub async fn connections(addrs: &[String], namespace: &str) -> Vec<pb::ProviderInfo> {
    let mut config = ClientConfig::new(addrs.to_vec());
    config.timeout = Duration::from_secs(10);
    let client = Client::new(config).unwrap();
    let request = pb::ListProvidersRequest {
        namespace_prefix: namespace.to_string(),
        ..Default::default()
    };
    client
        .registry(request, |mut registry, request| async move {
            registry.list_providers(request).await
        })
        .await
        .expect("providers listed")
        .providers
}

/// Waits until no node of `addrs` knows `module` any more (each asked on its
/// own replica), at most [`PATIENCE`].
pub async fn gone_everywhere(addrs: &[String], module: &str) {
    for addr in addrs {
        let client = caller(addr);
        let start = std::time::Instant::now();
        loop {
            match client.get_module(module, pb::ReadConsistency::Stale).await {
                Err(orrery_sdk::client::ClientError::Api(e))
                    if e.code == pb::ErrorCode::NotFound =>
                {
                    break
                }
                other => assert!(
                    start.elapsed() < PATIENCE,
                    "{module} is still on {addr}: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `"hi"` in, `"HI"` out.
pub fn hi() -> CValue {
    CValue::String("hi".into())
}

/// What [`upper`] answers to [`hi`].
pub fn hi_upper() -> CValue {
    CValue::String("HI".into())
}
