//! The settings a command runs with, and where they come from.
//!
//! Each setting is taken from the first of: its flag, its `ORRERY_*`
//! variable (both read by clap, see [`crate::args`]), the config file,
//! the built-in default. The config file is `--config FILE` (or
//! `ORRERY_CONFIG`), else `$XDG_CONFIG_HOME/orrery/config.toml` or
//! `~/.config/orrery/config.toml` when it exists. Its format:
//!
//! ```toml
//! endpoints = ["10.0.0.1:7400", "10.0.0.2:7400"]  # or "10.0.0.1:7400,10.0.0.2:7400"
//! output = "json"                                 # "table" or "json"
//! timeout = "10s"                                 # "500ms", "10s", "1m"
//! ```
//!
//! Unknown keys are errors, so a misspelt key does not go unnoticed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::args::{ArgSources, GlobalArgs};
use crate::client::ClientConfig;
use crate::errors::ConfigError;
use crate::output::OutputFormat;

/// The endpoint used when none is configured.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7400";
/// The time budget of a request when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The config file, as written. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The nodes to talk to: a list, or one comma-separated string.
    pub endpoints: Option<EndpointList>,
    /// `table` or `json`.
    pub output: Option<OutputFormat>,
    /// A duration such as `5s` (see [`parse_duration`]).
    pub timeout: Option<String>,
}

/// `endpoints` in the config file: `["a:1", "b:2"]` or `"a:1,b:2"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EndpointList {
    /// A TOML array of strings.
    List(Vec<String>),
    /// One comma-separated string, as in `ORRERY_ENDPOINTS`.
    Joined(String),
}

impl EndpointList {
    /// The endpoints, one per item, trimmed, empty items dropped.
    pub fn to_vec(&self) -> Vec<String> {
        let items: Vec<&str> = match self {
            EndpointList::List(list) => list.iter().map(String::as_str).collect(),
            EndpointList::Joined(joined) => joined.split(',').collect(),
        };
        items
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A config file that was found and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it says.
    pub file: ConfigFile,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// The named environment variable.
    Env(&'static str),
    /// The config file at this path.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The settings in effect, each with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The nodes to talk to, in order; never empty.
    pub endpoints: Vec<String>,
    /// Where `endpoints` came from.
    pub endpoints_source: Source,
    /// How to print answers.
    pub output: OutputFormat,
    /// Where `output` came from.
    pub output_source: Source,
    /// The time budget of each request, retries included.
    pub timeout: Duration,
    /// Where `timeout` came from.
    pub timeout_source: Source,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Applies the precedence flag > variable > file > default. `args` holds
    /// what clap read from flags and variables, `sources` which of the two
    /// each came from.
    pub fn resolve(
        args: &GlobalArgs,
        sources: &ArgSources,
        file: Option<&LoadedConfig>,
    ) -> Result<Settings, ConfigError> {
        let from_args = |source: &Option<Source>| source.clone().unwrap_or(Source::Flag);
        let file_source = || Source::File(file.map(|f| f.path.clone()).unwrap_or_default());

        let arg_endpoints: Option<Vec<String>> = args.endpoints.as_ref().map(|list| {
            list.iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        });
        let file_endpoints = file
            .and_then(|f| f.file.endpoints.as_ref())
            .map(EndpointList::to_vec);
        let (endpoints, endpoints_source) = match (arg_endpoints, file_endpoints) {
            (Some(list), _) if !list.is_empty() => (list, from_args(&sources.endpoints)),
            (_, Some(list)) if !list.is_empty() => (list, file_source()),
            _ => (vec![DEFAULT_ENDPOINT.to_string()], Source::Default),
        };

        let (output, output_source) = match (args.output, file.and_then(|f| f.file.output)) {
            (Some(output), _) => (output, from_args(&sources.output)),
            (None, Some(output)) => (output, file_source()),
            (None, None) => (OutputFormat::Table, Source::Default),
        };

        let file_timeout = match file.and_then(|f| f.file.timeout.as_deref().map(|t| (f, t))) {
            Some((f, text)) => {
                Some(parse_duration(text).map_err(|message| ConfigError::Value {
                    path: f.path.clone(),
                    key: "timeout",
                    message,
                })?)
            }
            None => None,
        };
        let (timeout, timeout_source) = match (args.timeout, file_timeout) {
            (Some(timeout), _) => (timeout, from_args(&sources.timeout)),
            (None, Some(timeout)) => (timeout, file_source()),
            (None, None) => (DEFAULT_TIMEOUT, Source::Default),
        };

        Ok(Settings {
            endpoints,
            endpoints_source,
            output,
            output_source,
            timeout,
            timeout_source,
            config_file: file.map(|f| f.path.clone()),
        })
    }

    /// The client configuration these settings ask for.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            timeout: self.timeout,
            ..ClientConfig::new(self.endpoints.clone())
        }
    }
}

/// The default config file: `$XDG_CONFIG_HOME/orrery/config.toml` when
/// `XDG_CONFIG_HOME` is an absolute path, else `~/.config/orrery/config.toml`.
/// `None` when there is no home directory.
pub fn default_config_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| dirs::home_dir().map(|home| home.join(".config")))?;
    Some(base.join("orrery").join("config.toml"))
}

/// Reads the config file: `explicit` (from `--config` or `ORRERY_CONFIG`)
/// must exist; the default one is read only when it exists.
pub fn load(explicit: Option<&Path>) -> Result<Option<LoadedConfig>, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => match default_config_path() {
            Some(path) if path.is_file() => path,
            _ => return Ok(None),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let file = parse_config(&text).map_err(|message| ConfigError::Parse {
        path: path.clone(),
        message,
    })?;
    Ok(Some(LoadedConfig { path, file }))
}

/// Parses the text of a config file.
pub fn parse_config(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.message().to_string())
}

/// Parses a duration: a whole number followed by `ms`, `s` or `m`; a bare
/// number is seconds. Zero is refused (it would allow no request at all).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let bad = || format!("invalid duration {text:?}: expected e.g. 500ms, 5s or 1m");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err(format!("invalid duration {text:?}: must be more than zero"));
    }
    Ok(duration)
}

/// Prints a duration the way [`parse_duration`] reads it where it can:
/// `250ms`, `5s`, and seconds with decimals otherwise (`1.5s`).
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", secs.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedConfig {
        LoadedConfig {
            path: PathBuf::from("/etc/orrery/config.toml"),
            file: parse_config(text).unwrap(),
        }
    }

    /// Both forms of `endpoints` and every key parse; unknown keys and bad
    /// values are refused.
    /// Steps: parse a full file, a joined endpoint string, an empty file, a
    /// misspelt key and a bad output format.
    #[test]
    fn parses_config_files() {
        let full = parse_config(
            "endpoints = [\"a:1\", \" b:2 \"]\noutput = \"json\"\ntimeout = \"250ms\"\n",
        )
        .unwrap();
        assert_eq!(
            full.endpoints.unwrap().to_vec(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(full.output, Some(OutputFormat::Json));
        assert_eq!(full.timeout.as_deref(), Some("250ms"));

        let joined = parse_config("endpoints = \"a:1, b:2,\"").unwrap();
        assert_eq!(
            joined.endpoints.unwrap().to_vec(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(parse_config("").unwrap(), ConfigFile::default());

        let misspelt = parse_config("endpoint = \"a:1\"").unwrap_err();
        assert!(misspelt.contains("unknown field `endpoint`"), "{misspelt}");
        assert!(parse_config("output = \"yaml\"").is_err());
    }

    /// Flags and variables beat the file, the file beats the defaults.
    /// Steps: resolve with nothing, with a file only, with a file and
    /// arguments from a flag and a variable; compare values and sources.
    #[test]
    fn precedence_flag_env_file_default() {
        let none = Settings::resolve(&GlobalArgs::default(), &ArgSources::default(), None).unwrap();
        assert_eq!(none.endpoints, vec![DEFAULT_ENDPOINT.to_string()]);
        assert_eq!(none.endpoints_source, Source::Default);
        assert_eq!(none.output, OutputFormat::Table);
        assert_eq!(none.timeout, DEFAULT_TIMEOUT);
        assert_eq!(none.config_file, None);

        let file = loaded("endpoints = \"f:1\"\noutput = \"json\"\ntimeout = \"2s\"");
        let from_file =
            Settings::resolve(&GlobalArgs::default(), &ArgSources::default(), Some(&file)).unwrap();
        let file_source = Source::File(PathBuf::from("/etc/orrery/config.toml"));
        assert_eq!(from_file.endpoints, vec!["f:1".to_string()]);
        assert_eq!(from_file.endpoints_source, file_source);
        assert_eq!(from_file.output, OutputFormat::Json);
        assert_eq!(from_file.output_source, file_source);
        assert_eq!(from_file.timeout, Duration::from_secs(2));
        assert_eq!(from_file.timeout_source, file_source);

        let args = GlobalArgs {
            endpoints: Some(vec!["e:1".into(), "e:2".into()]),
            output: Some(OutputFormat::Table),
            timeout: None,
            config: None,
        };
        let sources = ArgSources {
            endpoints: Some(Source::Env("ORRERY_ENDPOINTS")),
            output: Some(Source::Flag),
            ..ArgSources::default()
        };
        let mixed = Settings::resolve(&args, &sources, Some(&file)).unwrap();
        assert_eq!(mixed.endpoints, vec!["e:1".to_string(), "e:2".to_string()]);
        assert_eq!(mixed.endpoints_source, Source::Env("ORRERY_ENDPOINTS"));
        assert_eq!(mixed.output, OutputFormat::Table);
        assert_eq!(mixed.output_source, Source::Flag);
        assert_eq!(mixed.timeout, Duration::from_secs(2));
        assert_eq!(mixed.timeout_source, file_source);
        assert_eq!(mixed.client_config().timeout, Duration::from_secs(2));
    }

    /// An empty endpoint list falls through to the next source, and a bad
    /// timeout in the file is an error naming the key.
    #[test]
    fn empty_endpoints_fall_through_and_bad_timeouts_fail() {
        let args = GlobalArgs {
            endpoints: Some(vec![" ".into()]),
            ..GlobalArgs::default()
        };
        let file = loaded("endpoints = []");
        let s = Settings::resolve(&args, &ArgSources::default(), Some(&file)).unwrap();
        assert_eq!(s.endpoints, vec![DEFAULT_ENDPOINT.to_string()]);

        let bad = loaded("timeout = \"soon\"");
        let err = Settings::resolve(&GlobalArgs::default(), &ArgSources::default(), Some(&bad))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config file /etc/orrery/config.toml: timeout: invalid duration \"soon\": \
             expected e.g. 500ms, 5s or 1m"
        );
    }

    /// A file named with `--config` must exist; a present one is read.
    /// Steps: load a missing path, then a written temp file.
    #[test]
    fn loads_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            load(Some(&missing)),
            Err(ConfigError::Read { .. })
        ));
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "output = \"json\"\n").unwrap();
        let loaded = load(Some(&path)).unwrap().unwrap();
        assert_eq!(loaded.path, path);
        assert_eq!(loaded.file.output, Some(OutputFormat::Json));
    }

    /// Durations parse in the three units and print back the same way.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "5h", "-1s", "1.5s", "0s", "0"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.234s");
    }
}
