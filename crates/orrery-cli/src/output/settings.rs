//! The view of `orrery config show`: the settings in effect and where each
//! one came from.

use serde::Serialize;

use super::{key_values, OutputFormat, Render};
use crate::config::{fmt_duration, Settings};

/// `orrery config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsView {
    /// The endpoints, in order.
    pub endpoints: Setting<Vec<String>>,
    /// `table` or `json`.
    pub output: Setting<OutputFormat>,
    /// The time budget of a request, as `--timeout` takes it (`5s`).
    pub timeout: Setting<String>,
    /// The config file read; `null` when none was.
    pub config_file: Option<String>,
}

/// One setting and its source: `flag`, `env ORRERY_...`, `file PATH` or
/// `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    /// The value in effect.
    pub value: T,
    /// Where it came from.
    pub source: String,
}

impl From<&Settings> for SettingsView {
    fn from(s: &Settings) -> Self {
        SettingsView {
            endpoints: Setting {
                value: s.endpoints.clone(),
                source: s.endpoints_source.to_string(),
            },
            output: Setting {
                value: s.output,
                source: s.output_source.to_string(),
            },
            timeout: Setting {
                value: fmt_duration(s.timeout),
                source: s.timeout_source.to_string(),
            },
            config_file: s.config_file.as_ref().map(|p| p.display().to_string()),
        }
    }
}

impl Render for SettingsView {
    fn table(&self) -> String {
        let output = match self.output.value {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
        };
        key_values(&[
            (
                "endpoints",
                format!(
                    "{}  ({})",
                    self.endpoints.value.join(","),
                    self.endpoints.source
                ),
            ),
            ("output", format!("{output}  ({})", self.output.source)),
            (
                "timeout",
                format!("{}  ({})", self.timeout.value, self.timeout.source),
            ),
            (
                "config file",
                self.config_file.clone().unwrap_or_else(|| "none".into()),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::Source;
    use crate::output::render;

    fn sample() -> Settings {
        Settings {
            endpoints: vec!["a:1".into(), "b:2".into()],
            endpoints_source: Source::Env("ORRERY_ENDPOINTS"),
            output: OutputFormat::Table,
            output_source: Source::Default,
            timeout: Duration::from_millis(1500),
            timeout_source: Source::File(PathBuf::from("/c.toml")),
            config_file: Some(PathBuf::from("/c.toml")),
        }
    }

    /// Each setting with its source, in both formats.
    #[test]
    fn settings_outputs() {
        let view = SettingsView::from(&sample());
        assert_eq!(
            render(OutputFormat::Table, &view),
            "\
endpoints    a:1,b:2  (env ORRERY_ENDPOINTS)
output       table  (default)
timeout      1.5s  (file /c.toml)
config file  /c.toml
"
        );
        assert_eq!(
            render(OutputFormat::Json, &view),
            r#"{
  "endpoints": {
    "value": [
      "a:1",
      "b:2"
    ],
    "source": "env ORRERY_ENDPOINTS"
  },
  "output": {
    "value": "table",
    "source": "default"
  },
  "timeout": {
    "value": "1.5s",
    "source": "file /c.toml"
  },
  "config_file": "/c.toml"
}
"#
        );
    }
}
