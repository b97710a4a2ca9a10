//! Views of modules (`modules list`, `modules show`) and of the answer of
//! `exec`.

use std::collections::BTreeMap;

use orrery_proto::pb;
use orrery_types::schema::to_ctype;
use serde::Serialize;

use super::namespaces::ReadNote;
use super::providers::{joined, state_name};
use super::{key_values, table, Render};

/// One module: its types written as `CType`'s display, its serving
/// connections, tags and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleView {
    /// `namespace.name`.
    pub qualified_name: String,
    /// The namespace.
    pub namespace: String,
    /// The name within the namespace.
    pub name: String,
    /// The version most connections serve.
    pub version: String,
    /// What the module does.
    pub description: String,
    /// The input type, e.g. `Product{text: String, times: Int}`.
    pub input_type: String,
    /// The output type.
    pub output_type: String,
    /// The connections serving it.
    pub serving: Vec<ServingView>,
    /// A canary rollout, if there is or was one.
    pub canary: Option<CanaryView>,
    /// The module's tags, ordered by key.
    pub tags: BTreeMap<String, String>,
    /// The revision at which it first appeared.
    pub created_revision: u64,
    /// The revision of its last change.
    pub modified_revision: u64,
    /// How the answer was read; skipped in JSON.
    #[serde(skip)]
    pub read: ReadNote,
}

/// A connection serving a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServingView {
    /// The connection id.
    pub connection_id: u64,
    /// Its executor endpoint.
    pub endpoint: String,
    /// `registered`, `active`, `draining` or `unknown`.
    pub state: &'static str,
    /// The version it serves.
    pub version: String,
}

/// Where a canary rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CanaryView {
    /// The version under rollout.
    pub canary_version: String,
    /// The version it replaces.
    pub stable_version: String,
    /// `IN_PROGRESS`, `PROMOTED`, `ROLLED_BACK`, `PARTIAL_FAILURE`.
    pub outcome: String,
    /// The current (or last) step, an index into `steps_percent`.
    pub step: u32,
    /// The policy's steps: the canary's share of calls at each, in percent.
    pub steps_percent: Vec<u32>,
    /// The share of calls it takes, in percent.
    pub traffic_percent: u32,
    /// Why it was rolled back or failed; empty otherwise.
    pub reason: String,
}

/// Modules ordered by qualified name: a JSON array of [`ModuleView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ModuleList {
    /// The modules.
    pub modules: Vec<ModuleView>,
    /// How the answer was read.
    #[serde(skip)]
    pub read: ReadNote,
}

/// The answer of `exec`: the output as typed JSON and who served it. The
/// table form is the output alone, as compact JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecView {
    /// The output, as typed JSON against the module's output type.
    pub output: serde_json::Value,
    /// The connection that served the call.
    pub connection_id: u64,
    /// The version of the module that served it.
    pub version: String,
    /// The call's execution id.
    pub execution_id: String,
}

/// A type schema as `CType`'s display, or why it cannot be read.
fn type_text(schema: Option<&pb::TypeSchema>) -> String {
    match schema.map(to_ctype) {
        Some(Ok(ty)) => ty.to_string(),
        Some(Err(error)) => format!("(invalid type: {error})"),
        None => "(no type)".to_string(),
    }
}

impl ModuleView {
    /// The view of a module, with how it was read.
    pub fn new(info: &pb::ModuleInfo, header: Option<&pb::ResponseHeader>) -> Self {
        ModuleView {
            qualified_name: info.qualified_name.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            version: info.version.clone(),
            description: info.description.clone(),
            input_type: type_text(info.input_type.as_ref()),
            output_type: type_text(info.output_type.as_ref()),
            serving: info
                .serving
                .iter()
                .map(|s| ServingView {
                    connection_id: s.connection_id,
                    endpoint: s.executor_endpoint.clone(),
                    state: state_name(s.state),
                    version: s.version.clone(),
                })
                .collect(),
            canary: info.canary.as_ref().map(|c| {
                let outcome = pb::CanaryOutcome::try_from(c.outcome)
                    .unwrap_or_default()
                    .as_str_name();
                CanaryView {
                    canary_version: c.canary_version.clone(),
                    stable_version: c.stable_version.clone(),
                    outcome: outcome
                        .strip_prefix("CANARY_OUTCOME_")
                        .unwrap_or(outcome)
                        .to_string(),
                    step: c.step,
                    steps_percent: c
                        .policy
                        .as_ref()
                        .map(|p| p.steps_percent.clone())
                        .unwrap_or_default(),
                    traffic_percent: c.traffic_percent,
                    reason: c.reason.clone(),
                }
            }),
            tags: info
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            created_revision: info.created_revision,
            modified_revision: info.modified_revision,
            read: ReadNote::from(header),
        }
    }
}

impl From<&pb::GetModuleResponse> for ModuleView {
    fn from(r: &pb::GetModuleResponse) -> Self {
        ModuleView::new(&r.module.clone().unwrap_or_default(), r.header.as_ref())
    }
}

impl From<&pb::ListModulesResponse> for ModuleList {
    fn from(r: &pb::ListModulesResponse) -> Self {
        let mut modules: Vec<ModuleView> =
            r.modules.iter().map(|m| ModuleView::new(m, None)).collect();
        modules.sort_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
        ModuleList {
            modules,
            read: ReadNote::from(r.header.as_ref()),
        }
    }
}

impl CanaryView {
    /// One line: versions, outcome, step, traffic share and reason, e.g. `1.3.0 replacing
    /// 1.2.0, IN_PROGRESS at step 2/4 (25% of calls)`.
    fn line(&self) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        format!(
            "{} replacing {}, {} at step {}/{} ({}% of calls){reason}",
            self.canary_version,
            self.stable_version,
            self.outcome,
            self.step + 1,
            self.steps_percent.len(),
            self.traffic_percent
        )
    }
}

impl Render for ModuleView {
    fn table(&self) -> String {
        let canary = self
            .canary
            .as_ref()
            .map_or_else(|| "-".to_string(), CanaryView::line);
        let mut out = key_values(&[
            ("module", self.qualified_name.clone()),
            ("version", self.version.clone()),
            ("description", self.description.clone()),
            ("input type", self.input_type.clone()),
            ("output type", self.output_type.clone()),
            (
                "tags",
                joined(self.tags.iter().map(|(k, v)| format!("{k}={v}"))),
            ),
            ("canary", canary),
            ("created revision", self.created_revision.to_string()),
            ("modified revision", self.modified_revision.to_string()),
        ]);
        out.push('\n');
        if self.serving.is_empty() {
            out.push_str("no serving connections\n");
        } else {
            let rows: Vec<Vec<String>> = self
                .serving
                .iter()
                .map(|s| {
                    vec![
                        s.connection_id.to_string(),
                        s.endpoint.clone(),
                        s.state.to_string(),
                        s.version.clone(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["CONNECTION", "ENDPOINT", "STATE", "VERSION"],
                &rows,
            ));
        }
        out.push_str(&self.read.line());
        out
    }
}

impl Render for ModuleList {
    fn table(&self) -> String {
        let mut out = if self.modules.is_empty() {
            "no modules\n".to_string()
        } else {
            let rows: Vec<Vec<String>> = self
                .modules
                .iter()
                .map(|m| {
                    vec![
                        m.qualified_name.clone(),
                        m.version.clone(),
                        m.input_type.clone(),
                        m.output_type.clone(),
                        m.serving.len().to_string(),
                    ]
                })
                .collect();
            table(&["MODULE", "VERSION", "INPUT", "OUTPUT", "SERVING"], &rows)
        };
        out.push_str(&self.read.line());
        out
    }
}

impl Render for ExecView {
    fn table(&self) -> String {
        format!("{}\n", self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: render a module rolled back at its first step. Expect the canary line with
    /// the versions, outcome, step, share and reason, and the step in JSON.
    #[test]
    fn a_rollout_is_shown_with_its_step_and_reason() {
        let info = pb::ModuleInfo {
            qualified_name: "acme.upper".into(),
            version: "1.2.0".into(),
            canary: Some(pb::CanaryStatus {
                canary_version: "1.3.0".into(),
                stable_version: "1.2.0".into(),
                outcome: pb::CanaryOutcome::RolledBack as i32,
                step: 0,
                traffic_percent: 0,
                policy: Some(pb::CanaryPolicy {
                    steps_percent: vec![10, 50, 100],
                    ..Default::default()
                }),
                reason: "success ratio 0.700 below 0.950".into(),
            }),
            ..Default::default()
        };
        let view = ModuleView::new(&info, None);
        let text = view.table();
        assert!(
            text.contains(
                "canary             1.3.0 replacing 1.2.0, ROLLED_BACK at step 1/3 (0% of calls): success ratio 0.700 below 0.950"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["canary"]["step"], 0);
        assert_eq!(json["canary"]["outcome"], "ROLLED_BACK");
    }
}
