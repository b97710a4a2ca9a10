//! Turning a [`Discovery`] into the `host:port` list of nodes to try, through
//! hickory-resolver for the DNS kinds: [`Resolver`] for a provider, which resolves before
//! every round of attempts, and [`resolve`] once for a caller. The resolver keeps no cache (`cache_size = 0`), so
//! every resolution (one before each reconnect round) sees the records as they are now.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::Discovery;

/// Why a resolution found no node. The provider retries with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The resolver could not be set up (e.g. no readable `/etc/resolv.conf`).
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    /// The lookup failed or found no record.
    #[error("DNS lookup of {name} failed: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Resolves one [`Discovery`] as often as asked.
pub struct Resolver {
    discovery: Discovery,
    dns: Option<TokioResolver>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("discovery", &self.discovery)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver of `discovery`, asking `dns_server` (or the system's servers when
    /// `None`) for the DNS kinds.
    pub fn new(
        discovery: Discovery,
        dns_server: Option<SocketAddr>,
    ) -> Result<Resolver, DiscoveryError> {
        let dns = match discovery {
            Discovery::Static(_) => None,
            Discovery::DnsA { .. } | Discovery::DnsSrv { .. } => Some(dns_resolver(dns_server)?),
        };
        Ok(Resolver { discovery, dns })
    }

    /// The nodes now, `host:port` each, in the order to try them.
    pub async fn resolve(&self) -> Result<Vec<String>, DiscoveryError> {
        match (&self.discovery, &self.dns) {
            (Discovery::Static(nodes), _) => Ok(nodes.clone()),
            (Discovery::DnsA { name, port }, Some(dns)) => Ok(lookup_ips(dns, name)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, *port).to_string())
                .collect()),
            (Discovery::DnsSrv { name }, Some(dns)) => lookup_srv(dns, name).await,
            (_, None) => Err(DiscoveryError::Resolver("no DNS resolver".into())),
        }
    }
}

/// The nodes `discovery` names now, once: for a caller's
/// [`crate::client::ClientConfig`], e.g. `ClientConfig::new(resolve(&d, None).await?)`.
pub async fn resolve(
    discovery: &Discovery,
    dns_server: Option<SocketAddr>,
) -> Result<Vec<String>, DiscoveryError> {
    Resolver::new(discovery.clone(), dns_server)?
        .resolve()
        .await
}

/// A resolver without cache, asking `server` or the system's name servers.
fn dns_resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DiscoveryError> {
    let mut builder = match server {
        Some(server) => {
            let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut name_server.connections {
                connection.port = server.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![name_server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => {
            TokioResolver::builder_tokio().map_err(|e| DiscoveryError::Resolver(e.to_string()))?
        }
    };
    builder.options_mut().cache_size = 0;
    builder
        .build()
        .map_err(|e| DiscoveryError::Resolver(e.to_string()))
}

/// Every A and AAAA address of `name`.
async fn lookup_ips(dns: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, DiscoveryError> {
    let fqdn = fully_qualified(name);
    let failed = |reason: String| DiscoveryError::Lookup {
        name: fqdn.clone(),
        reason,
    };
    let found = dns
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let ips: Vec<IpAddr> = found.iter().collect();
    if ips.is_empty() {
        return Err(failed("no A or AAAA record".into()));
    }
    Ok(ips)
}

/// The SRV records of `_orrery._tcp.NAME`, lowest priority first and heaviest weight
/// first within a priority, each target resolved to its addresses.
async fn lookup_srv(dns: &TokioResolver, name: &str) -> Result<Vec<String>, DiscoveryError> {
    let service = fully_qualified(&format!("_orrery._tcp.{}", name.trim_end_matches('.')));
    let found = dns
        .srv_lookup(service.as_str())
        .await
        .map_err(|e| DiscoveryError::Lookup {
            name: service.clone(),
            reason: e.to_string(),
        })?;
    let mut records: Vec<_> = found
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    records.sort_by_key(|srv| (srv.priority, std::cmp::Reverse(srv.weight)));
    let mut nodes = Vec::new();
    let mut last_error = None;
    for srv in records {
        match lookup_ips(dns, &srv.target.to_string()).await {
            Ok(ips) => nodes.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, srv.port))),
            Err(e) => last_error = Some(e),
        }
    }
    let mut unique = Vec::new();
    for node in nodes.into_iter().map(|n| n.to_string()) {
        if !unique.contains(&node) {
            unique.push(node);
        }
    }
    match (unique.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(DiscoveryError::Lookup {
            name: service,
            reason: "no SRV record".into(),
        }),
        (false, _) => Ok(unique),
    }
}

fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
