//! The view of one watch event: one line per event, as
//! `<revision> <KIND> <key>` or as one compact JSON object.

use orrery_proto::pb;
use serde::Serialize;

use super::providers::state_name;
use super::OutputFormat;

/// One change of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventView {
    /// The revision the change was applied at.
    pub revision: u64,
    /// The kind without its `CHANGE_KIND_` prefix, e.g. `MODULE_ADDED`.
    pub kind: String,
    /// The key: a qualified module name, a connection id, or a namespace.
    pub key: String,
    /// The changed object, summarised; `null` when the event carries none.
    pub object: Option<ObjectSummary>,
}

/// The changed object of an event, in a few fields; `type` says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ObjectSummary {
    /// A module.
    Module {
        /// `namespace.name`.
        qualified_name: String,
        /// The version most connections serve.
        version: String,
        /// How many connections serve it.
        serving: usize,
    },
    /// A provider connection.
    Provider {
        /// The connection id.
        connection_id: u64,
        /// The namespace it serves.
        namespace: String,
        /// Its state, as in `providers list`.
        state: &'static str,
        /// Its executor endpoint.
        endpoint: String,
    },
    /// A namespace.
    Namespace {
        /// The namespace.
        namespace: String,
        /// The owning group; `null` when a lone connection owns it.
        owner_group: Option<String>,
        /// The owning connection; `null` when a group owns it.
        owner_connection_id: Option<u64>,
    },
}

impl From<&pb::WatchEvent> for EventView {
    fn from(e: &pb::WatchEvent) -> Self {
        use pb::watch_event::Object;
        let kind = pb::ChangeKind::try_from(e.kind)
            .unwrap_or_default()
            .as_str_name();
        let object = e.object.as_ref().map(|object| match object {
            Object::Module(m) => ObjectSummary::Module {
                qualified_name: m.qualified_name.clone(),
                version: m.version.clone(),
                serving: m.serving.len(),
            },
            Object::Provider(p) => ObjectSummary::Provider {
                connection_id: p.connection_id,
                namespace: p.namespace.clone(),
                state: state_name(p.state),
                endpoint: p.executor_endpoint.clone(),
            },
            Object::Namespace(n) => ObjectSummary::Namespace {
                namespace: n.namespace.clone(),
                owner_group: (!n.owner_group.is_empty()).then(|| n.owner_group.clone()),
                owner_connection_id: super::known(n.owner_connection_id),
            },
        });
        EventView {
            revision: e.revision,
            kind: kind
                .strip_prefix("CHANGE_KIND_")
                .unwrap_or(kind)
                .to_string(),
            key: e.key.clone(),
            object,
        }
    }
}

impl EventView {
    /// The event on one line, ending with a newline.
    pub fn line(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Table => format!("{} {} {}\n", self.revision, self.kind, self.key),
            OutputFormat::Json => {
                // Strings, numbers and options only: cannot fail.
                let mut json = serde_json::to_string(self).expect("views serialize to JSON");
                json.push('\n');
                json
            }
        }
    }
}
