//! [`SdkConfig`]: everything a provider needs besides its modules (namespace, group,
//! executor addresses, discovery, lease and heartbeat, reconnect backoff, time budgets,
//! shutdown grace, canary policy), with its defaults and the checks [`crate::Provider::new`]
//! runs before anything is sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use orrery_proto::pb;
use orrery_types::names::{Endpoint, GroupId, Namespace};

use crate::errors::ConfigError;

/// How the provider finds the cluster's nodes. Resolved again before every reconnect, so
/// a cluster whose addresses change is found again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// These nodes, `host:port` each (a host name is resolved by the system resolver
    /// when dialed).
    Static(Vec<String>),
    /// Every A and AAAA record of `name`, each dialed at `port`.
    DnsA {
        /// The name to resolve, e.g. `orrery.internal`.
        name: String,
        /// The nodes' gRPC port.
        port: u16,
    },
    /// The SRV records of `_orrery._tcp.NAME` (lowest priority first, then heaviest
    /// weight), each target resolved to its A/AAAA addresses.
    DnsSrv {
        /// The domain, e.g. `orrery.internal` for `_orrery._tcp.orrery.internal`.
        name: String,
    },
}

/// The canary policy sent with the registration (`RegisterRequest.canary`): a module
/// whose version differs from the version its group serves takes traffic step by step
/// while it stays healthy, and is rolled back when it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    /// The canary's share of calls at each step, in percent, increasing, each 1-100.
    /// Default `[10, 50, 100]`.
    pub steps_percent: Vec<u32>,
    /// How long each step is observed before the next. Default 10 s.
    pub observation_window: Duration,
    /// The lowest share of successful calls (0.0-1.0] in a window to step up. Default 0.95.
    pub min_success_ratio: f64,
    /// The highest acceptable p99 latency in a window; `None`: no bound. Default `None`.
    pub max_latency: Option<Duration>,
    /// The fewest calls a window must see before it is judged. Default 20.
    pub min_calls_per_window: u32,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            steps_percent: vec![10, 50, 100],
            observation_window: Duration::from_secs(10),
            min_success_ratio: 0.95,
            max_latency: None,
            min_calls_per_window: 20,
        }
    }
}

impl CanaryConfig {
    /// The policy as sent on the wire.
    pub fn to_policy(&self) -> pb::CanaryPolicy {
        pb::CanaryPolicy {
            steps_percent: self.steps_percent.clone(),
            observation_window_ms: millis(self.observation_window),
            min_success_ratio: self.min_success_ratio,
            max_latency_ms: self.max_latency.map_or(0, millis),
            min_calls_per_window: self.min_calls_per_window,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::new(field, message);
        if self.steps_percent.is_empty() {
            return Err(invalid("canary.steps_percent", "at least one step".into()));
        }
        if self.steps_percent.iter().any(|s| !(1..=100).contains(s))
            || self.steps_percent.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(invalid(
                "canary.steps_percent",
                format!("{:?}: steps must increase, each 1-100", self.steps_percent),
            ));
        }
        if !(self.min_success_ratio > 0.0 && self.min_success_ratio <= 1.0) {
            return Err(invalid(
                "canary.min_success_ratio",
                format!("{} is not in (0.0, 1.0]", self.min_success_ratio),
            ));
        }
        if self.observation_window.is_zero() {
            return Err(invalid(
                "canary.observation_window",
                "must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// A provider's configuration. Build it with [`SdkConfig::new`] and change the fields you
/// need; [`crate::Provider::new`] checks it.
#[derive(Debug, Clone)]
pub struct SdkConfig {
    /// The namespace the modules are registered under, e.g. `acme.text`. No default.
    pub namespace: String,
    /// The provider group: instances sharing a group id share the namespace and its calls.
    /// `None`: this provider alone owns the namespace. Default `None`.
    pub group_id: Option<String>,
    /// How the nodes are found. No default.
    pub discovery: Discovery,
    /// The DNS server to ask for [`Discovery::DnsA`] and [`Discovery::DnsSrv`];
    /// `None`: the system's (`/etc/resolv.conf`). Default `None`.
    pub dns_server: Option<SocketAddr>,
    /// Where the executor server listens when `run` is given no listener.
    /// Default `127.0.0.1:0` (loopback, any free port).
    pub executor_listen: SocketAddr,
    /// Where the nodes reach the executor, `host:port`; `None`: the listener's own
    /// address (which must then not be a wildcard such as `0.0.0.0`). Default `None`.
    pub executor_advertised: Option<String>,
    /// The lease TTL asked for; `None`: the cluster's default (5 s). At least 1 s.
    /// Default `None`.
    pub lease_ttl: Option<Duration>,
    /// How often to heartbeat; `None`: what the node says (a fifth of the TTL). When set,
    /// at most a third of `lease_ttl`. Default `None`.
    pub heartbeat_interval: Option<Duration>,
    /// How many heartbeat intervals may pass without any reply from the node before the
    /// provider moves to another node. At least 1. Default 2.
    pub unanswered_heartbeats: u32,
    /// The first pause of the reconnect backoff, after a round in which no node took the
    /// connection. Default 100 ms.
    pub reconnect_backoff: Duration,
    /// The longest pause of the reconnect backoff; each pause is drawn uniformly from
    /// `[0, min(cap, base * 2^attempt)]` (full jitter). Default 2 s.
    pub reconnect_backoff_cap: Duration,
    /// The longest wait for a TCP connection to one node. Default 1 s.
    pub connect_timeout: Duration,
    /// The budget of one request to one node (a registration to COMMITTED, an attach
    /// to `Attached`, a deregistration). Default 10 s.
    pub request_timeout: Duration,
    /// On shutdown, how long calls in flight may take to finish before the provider
    /// deregisters anyway. Default 30 s.
    pub shutdown_grace: Duration,
    /// The canary policy sent with the registration; `None`: a new version simply joins
    /// its group's pool. Default `None`.
    pub canary: Option<CanaryConfig>,
    /// Labels shown by `orrery providers show` (at most 32). Default empty.
    pub metadata: BTreeMap<String, String>,
    /// The `client_id` of the provider's request ids (1-128 characters); `None`: `sdk-`
    /// and a random UUID, new for each `Provider`. Default `None`.
    pub client_id: Option<String>,
}

impl SdkConfig {
    /// The defaults for a provider of `namespace` that finds the cluster by `discovery`.
    pub fn new(namespace: impl Into<String>, discovery: Discovery) -> Self {
        SdkConfig {
            namespace: namespace.into(),
            group_id: None,
            discovery,
            dns_server: None,
            executor_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            executor_advertised: None,
            lease_ttl: None,
            heartbeat_interval: None,
            unanswered_heartbeats: 2,
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_cap: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            canary: None,
            metadata: BTreeMap::new(),
            client_id: None,
        }
    }

    /// Checks every field that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Namespace::parse(&self.namespace)
            .map_err(|e| ConfigError::new("namespace", e.to_string()))?;
        if let Some(group) = &self.group_id {
            GroupId::parse(group).map_err(|e| ConfigError::new("group_id", e.to_string()))?;
        }
        match &self.discovery {
            Discovery::Static(nodes) => {
                if nodes.is_empty() {
                    return Err(ConfigError::new("discovery", "no node given"));
                }
                for node in nodes {
                    Endpoint::parse(node)
                        .map_err(|e| ConfigError::new("discovery", format!("{node:?}: {e}")))?;
                }
            }
            Discovery::DnsA { name, port } => {
                check_dns_name(name)?;
                if *port == 0 {
                    return Err(ConfigError::new("discovery", "port 0"));
                }
            }
            Discovery::DnsSrv { name } => check_dns_name(name)?,
        }
        if let Some(advertised) = &self.executor_advertised {
            Endpoint::parse(advertised)
                .map_err(|e| ConfigError::new("executor_advertised", e.to_string()))?;
        }
        if let Some(ttl) = self.lease_ttl {
            if ttl < Duration::from_secs(1) {
                return Err(ConfigError::new("lease_ttl", "at least 1 s"));
            }
        }
        if let Some(interval) = self.heartbeat_interval {
            if interval.is_zero() {
                return Err(ConfigError::new("heartbeat_interval", "must be positive"));
            }
            let ttl = self.lease_ttl.unwrap_or(Duration::from_secs(5));
            if interval * 3 > ttl {
                return Err(ConfigError::new(
                    "heartbeat_interval",
                    format!("{interval:?} is more than a third of the lease TTL {ttl:?}"),
                ));
            }
        }
        if self.unanswered_heartbeats == 0 {
            return Err(ConfigError::new("unanswered_heartbeats", "at least 1"));
        }
        if self.reconnect_backoff.is_zero() || self.reconnect_backoff > self.reconnect_backoff_cap {
            return Err(ConfigError::new(
                "reconnect_backoff",
                format!(
                    "{:?} must be positive and at most reconnect_backoff_cap ({:?})",
                    self.reconnect_backoff, self.reconnect_backoff_cap
                ),
            ));
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be positive"));
            }
        }
        if self.metadata.len() > orrery_types::limits::MAX_LABELS {
            return Err(ConfigError::new(
                "metadata",
                format!("at most {} labels", orrery_types::limits::MAX_LABELS),
            ));
        }
        if let Some(client_id) = &self.client_id {
            if client_id.is_empty() || client_id.chars().count() > 128 {
                return Err(ConfigError::new("client_id", "1 to 128 characters"));
            }
        }
        if let Some(canary) = &self.canary {
            canary.validate()?;
        }
        Ok(())
    }
}

fn check_dns_name(name: &str) -> Result<(), ConfigError> {
    let trimmed = name.trim_end_matches('.');
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if trimmed.is_empty() || trimmed.len() > 253 || !trimmed.split('.').all(label_ok) {
        return Err(ConfigError::new(
            "discovery",
            format!("{name:?} is not a DNS name"),
        ));
    }
    Ok(())
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SdkConfig {
        SdkConfig::new(
            "acme.text",
            Discovery::Static(vec!["127.0.0.1:7400".into()]),
        )
    }

    /// The defaults pass, and each bad field is named by the error.
    /// Steps: validate the defaults; break one field at a time and check the field named.
    #[test]
    fn bad_fields_are_named() {
        config().validate().unwrap();
        type Breaks = Box<dyn Fn(&mut SdkConfig)>;
        let cases: Vec<(&str, Breaks)> = vec![
            ("namespace", Box::new(|c| c.namespace = "stdlib..x".into())),
            ("group_id", Box::new(|c| c.group_id = Some("a b".into()))),
            (
                "discovery",
                Box::new(|c| c.discovery = Discovery::Static(vec![])),
            ),
            (
                "discovery",
                Box::new(|c| c.discovery = Discovery::Static(vec!["nope".into()])),
            ),
            (
                "discovery",
                Box::new(|c| {
                    c.discovery = Discovery::DnsA {
                        name: "orrery.test".into(),
                        port: 0,
                    }
                }),
            ),
            (
                "discovery",
                Box::new(|c| {
                    c.discovery = Discovery::DnsSrv {
                        name: "bad name".into(),
                    }
                }),
            ),
            (
                "executor_advertised",
                Box::new(|c| c.executor_advertised = Some("host".into())),
            ),
            (
                "lease_ttl",
                Box::new(|c| c.lease_ttl = Some(Duration::from_millis(500))),
            ),
            (
                "heartbeat_interval",
                Box::new(|c| c.heartbeat_interval = Some(Duration::from_secs(2))),
            ),
            (
                "unanswered_heartbeats",
                Box::new(|c| c.unanswered_heartbeats = 0),
            ),
            (
                "reconnect_backoff",
                Box::new(|c| c.reconnect_backoff = Duration::from_secs(3)),
            ),
            (
                "request_timeout",
                Box::new(|c| c.request_timeout = Duration::ZERO),
            ),
            ("client_id", Box::new(|c| c.client_id = Some(String::new()))),
            (
                "canary.steps_percent",
                Box::new(|c| {
                    c.canary = Some(CanaryConfig {
                        steps_percent: vec![50, 10],
                        ..CanaryConfig::default()
                    })
                }),
            ),
            (
                "canary.min_success_ratio",
                Box::new(|c| {
                    c.canary = Some(CanaryConfig {
                        min_success_ratio: 1.5,
                        ..CanaryConfig::default()
                    })
                }),
            ),
        ];
        for (field, breaks) in cases {
            let mut c = config();
            breaks(&mut c);
            let error = c.validate().expect_err(field);
            assert_eq!(error.field(), field, "{error}");
        }
    }

    /// The canary policy goes on the wire with its durations in milliseconds.
    #[test]
    fn canary_maps_to_the_policy() {
        let canary = CanaryConfig {
            steps_percent: vec![5, 100],
            observation_window: Duration::from_millis(1500),
            min_success_ratio: 0.9,
            max_latency: Some(Duration::from_millis(250)),
            min_calls_per_window: 7,
        };
        canary.validate().unwrap();
        assert_eq!(
            canary.to_policy(),
            pb::CanaryPolicy {
                steps_percent: vec![5, 100],
                observation_window_ms: 1500,
                min_success_ratio: 0.9,
                max_latency_ms: 250,
                min_calls_per_window: 7,
            }
        );
        assert_eq!(CanaryConfig::default().to_policy().max_latency_ms, 0);
    }
}
