//! Views of provider connections: one connection (`providers show`, and
//! the answer of `providers drain`) and a list.

use std::collections::BTreeMap;
use std::time::Duration;

use orrery_proto::pb;
use serde::Serialize;

use super::namespaces::ReadNote;
use super::{key_values, known, table, Render};
use crate::config::fmt_duration;

/// One provider connection, every field of `ProviderInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderView {
    /// The connection id.
    pub connection_id: u64,
    /// Its current generation.
    pub generation: u64,
    /// The namespace it serves.
    pub namespace: String,
    /// Its provider group; `null` for a lone connection.
    pub group_id: Option<String>,
    /// Its executor endpoint.
    pub executor_endpoint: String,
    /// `registered`, `active`, `draining` or `unknown`.
    pub state: &'static str,
    /// The module names it declared.
    pub modules: Vec<String>,
    /// The modules it reported active last.
    pub active_modules: Vec<String>,
    /// The lease TTL in milliseconds.
    pub lease_ttl_ms: u64,
    /// Milliseconds until the lease runs out; `null` when unknown (stale
    /// reads: only the leader knows).
    pub lease_expires_in_ms: Option<u64>,
    /// The provider's metadata, ordered by key.
    pub metadata: BTreeMap<String, String>,
    /// The revision it was registered at.
    pub registered_revision: u64,
    /// When draining: the leader's time (unix ms) at which it is removed.
    pub drain_deadline_unix_ms: Option<u64>,
    /// How the answer was read; skipped in JSON.
    #[serde(skip)]
    pub read: ReadNote,
}

/// Connections ordered by id: a JSON array of [`ProviderView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProviderList {
    /// The connections.
    pub providers: Vec<ProviderView>,
    /// How the answer was read.
    #[serde(skip)]
    pub read: ReadNote,
}

/// A connection state as printed: `registered`, `active`, `draining`, or
/// `unknown` for a value this version does not know.
pub fn state_name(state: i32) -> &'static str {
    match pb::ConnectionState::try_from(state) {
        Ok(pb::ConnectionState::Registered) => "registered",
        Ok(pb::ConnectionState::Active) => "active",
        Ok(pb::ConnectionState::Draining) => "draining",
        _ => "unknown",
    }
}

/// Milliseconds as a duration (`1.5s`), `-` when unknown.
fn millis(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "-".to_string(),
        |ms| fmt_duration(Duration::from_millis(ms)),
    )
}

/// A list for a table cell: comma-separated, `-` when empty.
pub(crate) fn joined<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let text = items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

impl ProviderView {
    /// The view of a connection, with how it was read.
    pub fn new(info: &pb::ProviderInfo, header: Option<&pb::ResponseHeader>) -> Self {
        ProviderView {
            connection_id: info.connection_id,
            generation: info.generation,
            namespace: info.namespace.clone(),
            group_id: (!info.group_id.is_empty()).then(|| info.group_id.clone()),
            executor_endpoint: info.executor_endpoint.clone(),
            state: state_name(info.state),
            modules: info.modules.clone(),
            active_modules: info.active_modules.clone(),
            lease_ttl_ms: info.lease_ttl_ms,
            lease_expires_in_ms: known(info.lease_expires_in_ms),
            metadata: info
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            registered_revision: info.registered_revision,
            drain_deadline_unix_ms: known(info.drain_deadline_unix_ms),
            read: ReadNote::from(header),
        }
    }

    fn group(&self) -> String {
        self.group_id.clone().unwrap_or_else(|| "-".to_string())
    }
}

impl From<&pb::GetProviderResponse> for ProviderView {
    fn from(r: &pb::GetProviderResponse) -> Self {
        ProviderView::new(&r.provider.clone().unwrap_or_default(), r.header.as_ref())
    }
}

impl From<&pb::DrainProviderResponse> for ProviderView {
    fn from(r: &pb::DrainProviderResponse) -> Self {
        ProviderView::new(&r.provider.clone().unwrap_or_default(), r.header.as_ref())
    }
}

impl From<&pb::ListProvidersResponse> for ProviderList {
    fn from(r: &pb::ListProvidersResponse) -> Self {
        let mut providers: Vec<ProviderView> = r
            .providers
            .iter()
            .map(|p| ProviderView::new(p, None))
            .collect();
        providers.sort_by_key(|p| p.connection_id);
        ProviderList {
            providers,
            read: ReadNote::from(r.header.as_ref()),
        }
    }
}

impl Render for ProviderView {
    fn table(&self) -> String {
        let drain = self
            .drain_deadline_unix_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms} (unix ms)"));
        let mut out = key_values(&[
            ("connection id", self.connection_id.to_string()),
            ("generation", self.generation.to_string()),
            ("namespace", self.namespace.clone()),
            ("group", self.group()),
            ("endpoint", self.executor_endpoint.clone()),
            ("state", self.state.to_string()),
            ("modules", joined(&self.modules)),
            ("active modules", joined(&self.active_modules)),
            ("lease ttl", millis(Some(self.lease_ttl_ms))),
            ("lease expires in", millis(self.lease_expires_in_ms)),
            ("registered revision", self.registered_revision.to_string()),
            ("drain deadline", drain),
            (
                "metadata",
                joined(self.metadata.iter().map(|(k, v)| format!("{k}={v}"))),
            ),
        ]);
        out.push_str(&self.read.line());
        out
    }
}

impl Render for ProviderList {
    fn table(&self) -> String {
        let mut out = if self.providers.is_empty() {
            "no providers\n".to_string()
        } else {
            let rows: Vec<Vec<String>> = self
                .providers
                .iter()
                .map(|p| {
                    vec![
                        p.connection_id.to_string(),
                        p.generation.to_string(),
                        p.namespace.clone(),
                        p.group(),
                        p.executor_endpoint.clone(),
                        p.state.to_string(),
                        p.modules.len().to_string(),
                        millis(Some(p.lease_ttl_ms)),
                        millis(p.lease_expires_in_ms),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "GENERATION",
                    "NAMESPACE",
                    "GROUP",
                    "ENDPOINT",
                    "STATE",
                    "MODULES",
                    "LEASE TTL",
                    "EXPIRES IN",
                ],
                &rows,
            )
        };
        out.push_str(&self.read.line());
        out
    }
}
