//! Views of namespace answers: one namespace, a list, and the outcome of a
//! reservation or a release.

use orrery_proto::pb;
use serde::Serialize;

use super::{key_values, known, table, yes_no, Render};

/// One namespace and its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceView {
    /// The namespace.
    pub namespace: String,
    /// The owning provider group; `null` when a lone connection owns it.
    pub owner_group: Option<String>,
    /// The owning connection; `null` when a group owns it.
    pub owner_connection_id: Option<u64>,
    /// True when an operator reserved it.
    pub reserved: bool,
    /// Bumps every time the namespace changes owner.
    pub epoch: u64,
    /// The registry revision of its last change.
    pub modified_revision: u64,
    /// How the answer was read; skipped in JSON (see [`ReadNote`]).
    #[serde(skip)]
    pub read: ReadNote,
}

/// Namespaces ordered by name: a JSON array of [`NamespaceView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct NamespaceList {
    /// The namespaces.
    pub namespaces: Vec<NamespaceView>,
    /// How the answer was read.
    #[serde(skip)]
    pub read: ReadNote,
}

/// What a reservation or a release did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceChange {
    /// `reserve` or `release`.
    pub action: &'static str,
    /// False when the request changed nothing (the same reservation again).
    pub changed: bool,
    /// The namespace as it stands; for a release, as it was.
    pub namespace: NamespaceView,
}

/// For stale reads: which node answered and how far behind it may be.
/// Shown under the table; the JSON shapes stay those of the data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadNote {
    /// Set for stale answers: (answering node, milliseconds since it heard
    /// from a leader).
    pub stale: Option<(u64, u64)>,
}

impl From<Option<&pb::ResponseHeader>> for ReadNote {
    fn from(header: Option<&pb::ResponseHeader>) -> Self {
        ReadNote {
            stale: header
                .filter(|h| h.stale)
                .map(|h| (h.node_id, h.stale_by_ms)),
        }
    }
}

impl ReadNote {
    /// The note under a table: empty for linearizable reads.
    pub(crate) fn line(&self) -> String {
        match self.stale {
            Some((node, 0)) => format!("(stale read from node {node})\n"),
            Some((node, ms)) => {
                format!("(stale read from node {node}, up to {ms} ms behind the leader)\n")
            }
            None => String::new(),
        }
    }
}

impl NamespaceView {
    /// The view of a namespace, with how it was read.
    pub fn new(info: &pb::NamespaceInfo, header: Option<&pb::ResponseHeader>) -> Self {
        NamespaceView {
            namespace: info.namespace.clone(),
            owner_group: (!info.owner_group.is_empty()).then(|| info.owner_group.clone()),
            owner_connection_id: known(info.owner_connection_id),
            reserved: info.reserved,
            epoch: info.epoch,
            modified_revision: info.modified_revision,
            read: ReadNote::from(header),
        }
    }

    /// `group G`, `connection N` or `-`.
    fn owner(&self) -> String {
        match (&self.owner_group, self.owner_connection_id) {
            (Some(group), _) => format!("group {group}"),
            (None, Some(id)) => format!("connection {id}"),
            (None, None) => "-".to_string(),
        }
    }
}

impl From<&pb::NamespaceResponse> for NamespaceView {
    fn from(r: &pb::NamespaceResponse) -> Self {
        NamespaceView::new(&r.namespace.clone().unwrap_or_default(), r.header.as_ref())
    }
}

impl From<&pb::ListNamespacesResponse> for NamespaceList {
    fn from(r: &pb::ListNamespacesResponse) -> Self {
        let mut namespaces: Vec<NamespaceView> = r
            .namespaces
            .iter()
            .map(|n| NamespaceView::new(n, None))
            .collect();
        namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        NamespaceList {
            namespaces,
            read: ReadNote::from(r.header.as_ref()),
        }
    }
}

impl NamespaceChange {
    /// The outcome of `reserve`.
    pub fn reserved(r: &pb::NamespaceResponse) -> Self {
        NamespaceChange {
            action: "reserve",
            changed: r.changed,
            namespace: NamespaceView::from(r),
        }
    }

    /// The outcome of `release`.
    pub fn released(r: &pb::NamespaceResponse) -> Self {
        NamespaceChange {
            action: "release",
            changed: r.changed,
            namespace: NamespaceView::from(r),
        }
    }
}

impl Render for NamespaceView {
    fn table(&self) -> String {
        let mut out = key_values(&[
            ("namespace", self.namespace.clone()),
            ("owner", self.owner()),
            ("reserved", yes_no(self.reserved)),
            ("epoch", self.epoch.to_string()),
            ("modified revision", self.modified_revision.to_string()),
        ]);
        out.push_str(&self.read.line());
        out
    }
}

impl Render for NamespaceList {
    fn table(&self) -> String {
        let mut out = if self.namespaces.is_empty() {
            "no namespaces\n".to_string()
        } else {
            let rows: Vec<Vec<String>> = self
                .namespaces
                .iter()
                .map(|n| {
                    vec![
                        n.namespace.clone(),
                        n.owner(),
                        yes_no(n.reserved),
                        n.epoch.to_string(),
                        n.modified_revision.to_string(),
                    ]
                })
                .collect();
            table(
                &["NAMESPACE", "OWNER", "RESERVED", "EPOCH", "REVISION"],
                &rows,
            )
        };
        out.push_str(&self.read.line());
        out
    }
}

impl Render for NamespaceChange {
    fn table(&self) -> String {
        let ns = &self.namespace;
        let owner = ns.owner();
        match (self.action, self.changed) {
            ("reserve", true) => format!("reserved namespace {} for {owner}\n", ns.namespace),
            ("reserve", false) => format!(
                "namespace {} was already reserved for {owner}; nothing changed\n",
                ns.namespace
            ),
            (_, true) => format!(
                "released namespace {} (was reserved for {owner})\n",
                ns.namespace
            ),
            (_, false) => format!("namespace {} was not changed\n", ns.namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{render, OutputFormat};

    fn info(name: &str, group: &str, connection: u64, reserved: bool) -> pb::NamespaceInfo {
        pb::NamespaceInfo {
            namespace: name.into(),
            owner_group: group.into(),
            owner_connection_id: connection,
            reserved,
            epoch: 3,
            modified_revision: 17,
        }
    }

    fn stale_header() -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            node_id: 2,
            stale: true,
            stale_by_ms: 120,
            ..Default::default()
        })
    }

    /// One namespace as `key  value` lines and as a JSON object.
    #[test]
    fn get_outputs() {
        let response = pb::NamespaceResponse {
            header: None,
            namespace: Some(info("acme", "billing", 0, true)),
            changed: false,
        };
        let view = NamespaceView::from(&response);
        assert_eq!(
            render(OutputFormat::Table, &view),
            "\
namespace          acme
owner              group billing
reserved           yes
epoch              3
modified revision  17
"
        );
        assert_eq!(
            render(OutputFormat::Json, &view),
            r#"{
  "namespace": "acme",
  "owner_group": "billing",
  "owner_connection_id": null,
  "reserved": true,
  "epoch": 3,
  "modified_revision": 17
}
"#
        );
    }

    /// A list as a table sorted by name with a stale note, and as a JSON
    /// array without it; an empty list says so.
    #[test]
    fn list_outputs() {
        let response = pb::ListNamespacesResponse {
            header: stale_header(),
            namespaces: vec![
                info("zeta", "", 12, false),
                info("acme.tools", "billing", 0, true),
            ],
        };
        let view = NamespaceList::from(&response);
        assert_eq!(
            render(OutputFormat::Table, &view),
            "\
NAMESPACE   OWNER          RESERVED  EPOCH  REVISION
acme.tools  group billing  yes       3      17
zeta        connection 12  no        3      17
(stale read from node 2, up to 120 ms behind the leader)
"
        );
        assert_eq!(
            render(OutputFormat::Json, &view),
            r#"[
  {
    "namespace": "acme.tools",
    "owner_group": "billing",
    "owner_connection_id": null,
    "reserved": true,
    "epoch": 3,
    "modified_revision": 17
  },
  {
    "namespace": "zeta",
    "owner_group": null,
    "owner_connection_id": 12,
    "reserved": false,
    "epoch": 3,
    "modified_revision": 17
  }
]
"#
        );
        let empty = NamespaceList::from(&pb::ListNamespacesResponse::default());
        assert_eq!(render(OutputFormat::Table, &empty), "no namespaces\n");
        assert_eq!(render(OutputFormat::Json, &empty), "[]\n");
    }

    /// Reserve and release say what happened; JSON wraps the namespace.
    #[test]
    fn change_outputs() {
        let response = |changed| pb::NamespaceResponse {
            header: None,
            namespace: Some(info("acme", "billing", 0, true)),
            changed,
        };
        assert_eq!(
            render(
                OutputFormat::Table,
                &NamespaceChange::reserved(&response(true))
            ),
            "reserved namespace acme for group billing\n"
        );
        assert_eq!(
            render(
                OutputFormat::Table,
                &NamespaceChange::reserved(&response(false))
            ),
            "namespace acme was already reserved for group billing; nothing changed\n"
        );
        assert_eq!(
            render(
                OutputFormat::Table,
                &NamespaceChange::released(&response(true))
            ),
            "released namespace acme (was reserved for group billing)\n"
        );
        assert_eq!(
            render(
                OutputFormat::Json,
                &NamespaceChange::released(&response(true))
            ),
            r#"{
  "action": "release",
  "changed": true,
  "namespace": {
    "namespace": "acme",
    "owner_group": "billing",
    "owner_connection_id": null,
    "reserved": true,
    "epoch": 3,
    "modified_revision": 17
  }
}
"#
        );
    }
}
