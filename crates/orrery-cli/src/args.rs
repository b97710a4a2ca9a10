//! The command line grammar (clap derive): global options, every command
//! and its arguments. Parsing only: no I/O, no defaults from files. Values
//! a user leaves unset stay `None` here, so that [`crate::config`] can apply
//! the precedence flag > `ORRERY_*` variable > config file > default.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{parse_duration, Source};
use crate::output::OutputFormat;

/// `orrery`: the command line of an Orrery cluster.
#[derive(Debug, Parser)]
#[command(name = "orrery", version, about, long_about = None)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct GlobalArgs {
    /// Nodes to talk to, tried in order [default: 127.0.0.1:7400].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "ORRERY_ENDPOINTS",
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ','
    )]
    pub endpoints: Option<Vec<String>>,

    /// How to print answers [default: table].
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        env = "ORRERY_OUTPUT",
        value_enum
    )]
    pub output: Option<OutputFormat>,

    /// Time budget of each request, retries included, e.g. `5s`, `500ms`,
    /// `1m` [default: 5s].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "ORRERY_TIMEOUT",
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub timeout: Option<Duration>,

    /// Config file (TOML) [default: ~/.config/orrery/config.toml, if present].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "ORRERY_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Membership, leadership and snapshots.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Operator reservations of namespaces, and what owns each namespace.
    #[command(subcommand, visible_alias = "ns")]
    Namespaces(NamespacesCommand),
    /// Provider connections: list, show, drain.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Modules and the connections serving them.
    #[command(subcommand)]
    Modules(ModulesCommand),
    /// Run a module once through the cluster.
    Exec(ExecArgs),
    /// Stream registry changes until the server ends the stream or Ctrl-C.
    Watch(WatchArgs),
    /// The command line's own settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run one cluster member until SIGTERM or Ctrl-C.
    Node(NodeArgs),
    /// Run a local cluster on loopback in this process.
    Dev(DevArgs),
}

/// `orrery node`: one member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct NodeArgs {
    /// This node's id: unique in the cluster, never reused after a removal.
    #[arg(long, env = "ORRERY_NODE_ID")]
    pub id: u64,
    /// Address to listen on for every service.
    #[arg(long, env = "ORRERY_LISTEN", value_name = "HOST:PORT")]
    pub listen: String,
    /// Address peers and clients reach this node at. Default: --listen.
    #[arg(long, env = "ORRERY_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Directory of the node's data; the same directory resumes the node.
    #[arg(long, env = "ORRERY_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The cluster's first voters, this node included. The lowest id
    /// initializes the cluster on its first start.
    #[arg(
        long,
        env = "ORRERY_INITIAL_CLUSTER",
        value_name = "ID=HOST:PORT,...",
        value_delimiter = ',',
        value_parser = crate::cmd::node::parse_member,
        required_unless_present = "join",
        conflicts_with = "join"
    )]
    pub initial_cluster: Vec<(u64, String)>,
    /// Join a running cluster through any of these nodes: added as a
    /// learner, promoted to voter once caught up.
    #[arg(
        long,
        env = "ORRERY_JOIN",
        value_name = "HOST:PORT,...",
        value_delimiter = ','
    )]
    pub join: Vec<String>,
    /// Build a snapshot after this many applied entries.
    #[arg(long, env = "ORRERY_SNAPSHOT_THRESHOLD", default_value_t = 5000)]
    pub snapshot_threshold: u64,
    /// Entries already in a snapshot that stay in the log for lagging followers.
    #[arg(long, env = "ORRERY_KEEP_LOGS", default_value_t = 1000)]
    pub keep_logs: u64,
    /// Namespaces reserved besides `stdlib` and `orrery`, set when the
    /// cluster is initialized.
    #[arg(
        long = "reserved-prefix",
        env = "ORRERY_RESERVED_PREFIXES",
        value_delimiter = ','
    )]
    pub reserved_prefixes: Vec<String>,
    /// Log format on standard error; the level comes from RUST_LOG.
    #[arg(long, env = "ORRERY_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// `orrery dev`: a local cluster on loopback.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,
    /// Where to keep the nodes' data (kept on exit). Default: a temporary
    /// directory removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The first node's port; the others follow.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// The loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Also run the echo provider (`echo.echo`, `echo.greet`, `echo.summarize`,
    /// `echo.area`) against the cluster, and print a command that calls it.
    #[arg(long)]
    pub demo: bool,
    /// Log format on standard error; the level comes from RUST_LOG.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// How a node writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `orrery cluster ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ClusterCommand {
    /// The leader, the term and every member as the answering node sees them.
    Status,
    /// Add a node as a non-voting learner.
    AddLearner {
        /// The new node's id: unique, never a removed node's id.
        id: u64,
        /// The new node's address.
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Make a learner that has caught up a voter.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Remove a voter or a learner.
    Remove {
        /// The node's id.
        id: u64,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The voter to become leader.
        id: u64,
    },
    /// Build a snapshot on the answering node now and compact its log.
    Snapshot,
}

/// `orrery namespaces ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum NamespacesCommand {
    /// Reserve a namespace for a provider group.
    Reserve {
        /// The namespace.
        name: String,
        /// The provider group it is reserved for.
        #[arg(long, value_name = "GROUP")]
        group: String,
    },
    /// Release an operator reservation.
    Release {
        /// The namespace.
        name: String,
    },
    /// List namespaces, claimed by providers or reserved by operators.
    List {
        /// Only namespaces under this one (whole dot-separated segments).
        #[arg(long, value_name = "NAMESPACE")]
        prefix: Option<String>,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
    /// Show one namespace.
    Get {
        /// The namespace.
        name: String,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
}

/// `orrery providers ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ProvidersCommand {
    /// List provider connections, ordered by id.
    List {
        /// Only connections of this namespace and those under it.
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
    /// Show one provider connection.
    Show {
        /// The connection id.
        id: u64,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
    /// Stop routing calls to a connection and remove it after a deadline.
    Drain {
        /// The connection id.
        id: u64,
        /// How long the provider gets to finish its calls, e.g. `30s`, `2m`.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
        deadline: Duration,
    },
}

/// `orrery modules ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ModulesCommand {
    /// List modules, ordered by qualified name.
    List {
        /// Only modules of this namespace and those under it.
        #[arg(long, value_name = "NAMESPACE")]
        namespace: Option<String>,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
    /// Show one module: types, serving connections, tags, revisions.
    Show {
        /// The qualified name, `namespace.name`.
        name: String,
        /// How fresh the answer must be.
        #[arg(long, value_enum, default_value_t)]
        consistency: Consistency,
    },
}

/// `orrery exec`: one call of a module. The global `--timeout` is the
/// call's time budget (30s unless a flag, variable or file sets it).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ExecArgs {
    /// The module, `namespace.name`.
    #[arg(value_name = "NS.MODULE")]
    pub module: String,
    /// The input as JSON, read against the module's input type.
    #[arg(long, value_name = "JSON")]
    pub input: String,
    /// Metadata passed to the provider untouched; repeatable.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_metadata)]
    pub metadata: Vec<(String, String)>,
}

/// `orrery watch`: registry changes as they happen.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WatchArgs {
    /// The first revision to show; 0: changes from now on.
    #[arg(long = "from", value_name = "REV", default_value_t = 0)]
    pub from: u64,
    /// Only changes under this namespace (whole segments); repeatable.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Vec<String>,
}

/// Reads `KEY=VALUE`; the key may not be empty, the value may.
pub fn parse_metadata(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("invalid metadata {text:?}: expected KEY=VALUE")),
    }
}

/// `orrery config ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings in effect and where each one came from.
    Show,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read (through the leader).
    #[default]
    Linearizable,
    /// From the answering node's replica; may be behind.
    Stale,
}

/// Where each global option set on the command line came from: a flag or
/// its `ORRERY_*` variable; `None` when neither set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgSources {
    /// Of `--endpoints`.
    pub endpoints: Option<Source>,
    /// Of `--output`.
    pub output: Option<Source>,
    /// Of `--timeout`.
    pub timeout: Option<Source>,
    /// Of `--config`.
    pub config: Option<Source>,
}

/// A parsed command line: the arguments and where the global ones came from.
#[derive(Debug)]
pub struct Invocation {
    /// The arguments.
    pub cli: Cli,
    /// Where the global options came from.
    pub sources: ArgSources,
}

/// Parses a command line (the first item is the program name), reading
/// `ORRERY_*` variables for options not given as flags. On error, the clap
/// error knows how to print itself and its exit code (2 for usage errors,
/// 0 for `--help` and `--version`).
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let source = |id: &str, var: &'static str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Source::Flag),
        Some(ValueSource::EnvVariable) => Some(Source::Env(var)),
        _ => None,
    };
    let sources = ArgSources {
        endpoints: source("endpoints", "ORRERY_ENDPOINTS"),
        output: source("output", "ORRERY_OUTPUT"),
        timeout: source("timeout", "ORRERY_TIMEOUT"),
        config: source("config", "ORRERY_CONFIG"),
    };
    Ok(Invocation { cli, sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Invocation, clap::Error> {
        parse_from(std::iter::once("orrery").chain(args.iter().copied()))
    }

    /// The grammar is consistent (clap's own checks).
    #[test]
    fn grammar_is_valid() {
        Cli::command().debug_assert();
    }

    /// Global options are accepted before and after the command, and
    /// `--endpoints` takes a comma-separated list or repeats.
    /// Steps: parse three command lines; compare the global options and the
    /// recorded sources.
    #[test]
    fn global_options_anywhere() {
        let inv = parse(&[
            "--endpoints",
            "a:1,b:2",
            "cluster",
            "status",
            "-o",
            "json",
            "--timeout",
            "250ms",
        ])
        .unwrap();
        assert_eq!(
            inv.cli.global,
            GlobalArgs {
                endpoints: Some(vec!["a:1".into(), "b:2".into()]),
                output: Some(OutputFormat::Json),
                timeout: Some(Duration::from_millis(250)),
                config: None,
            }
        );
        assert_eq!(inv.sources.endpoints, Some(Source::Flag));
        assert_eq!(inv.sources.output, Some(Source::Flag));
        assert_eq!(inv.sources.timeout, Some(Source::Flag));
        assert!(matches!(
            inv.cli.command,
            Command::Cluster(ClusterCommand::Status)
        ));

        let repeated = parse(&["ns", "list", "--endpoints", "a:1", "--endpoints", "c:3"]).unwrap();
        assert_eq!(
            repeated.cli.global.endpoints,
            Some(vec!["a:1".into(), "c:3".into()])
        );
    }

    /// Every command parses into the expected value.
    /// Steps: parse each command line and compare.
    #[test]
    fn commands_parse() {
        let cluster = |args: &[&str]| match parse(args).unwrap().cli.command {
            Command::Cluster(c) => c,
            other => panic!("{other:?}"),
        };
        let namespaces = |args: &[&str]| match parse(args).unwrap().cli.command {
            Command::Namespaces(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            cluster(&["cluster", "add-learner", "4", "10.0.0.4:7400"]),
            ClusterCommand::AddLearner {
                id: 4,
                addr: "10.0.0.4:7400".into()
            }
        );
        assert_eq!(
            cluster(&["cluster", "promote", "4"]),
            ClusterCommand::Promote { id: 4 }
        );
        assert_eq!(
            cluster(&["cluster", "remove", "2"]),
            ClusterCommand::Remove { id: 2 }
        );
        assert_eq!(
            cluster(&["cluster", "transfer-leader", "3"]),
            ClusterCommand::TransferLeader { id: 3 }
        );
        assert_eq!(cluster(&["cluster", "snapshot"]), ClusterCommand::Snapshot);
        assert_eq!(
            namespaces(&["namespaces", "reserve", "acme", "--group", "billing"]),
            NamespacesCommand::Reserve {
                name: "acme".into(),
                group: "billing".into()
            }
        );
        assert_eq!(
            namespaces(&["namespaces", "release", "acme"]),
            NamespacesCommand::Release {
                name: "acme".into()
            }
        );
        assert_eq!(
            namespaces(&["ns", "list"]),
            NamespacesCommand::List {
                prefix: None,
                consistency: Consistency::Linearizable
            }
        );
        assert_eq!(
            namespaces(&[
                "namespaces",
                "list",
                "--prefix",
                "acme",
                "--consistency",
                "stale"
            ]),
            NamespacesCommand::List {
                prefix: Some("acme".into()),
                consistency: Consistency::Stale
            }
        );
        assert_eq!(
            namespaces(&["namespaces", "get", "acme", "--consistency", "stale"]),
            NamespacesCommand::Get {
                name: "acme".into(),
                consistency: Consistency::Stale
            }
        );
    }

    /// The new commands read their arguments: metadata pairs, a drain
    /// deadline as a duration, repeated watch prefixes.
    /// Steps: parse `exec`, `providers drain` and `watch`; compare.
    #[test]
    fn registry_commands_parse() {
        let Command::Exec(exec) = parse(&[
            "exec",
            "acme.upper",
            "--input",
            "{\"a\":1}",
            "--metadata",
            "k=v=w",
            "--metadata",
            "e=",
        ])
        .unwrap()
        .cli
        .command
        else {
            panic!("not exec")
        };
        assert_eq!(
            exec.metadata,
            [("k".into(), "v=w".into()), ("e".into(), String::new())]
        );
        let Command::Providers(drain) = parse(&["providers", "drain", "7", "--deadline", "2m"])
            .unwrap()
            .cli
            .command
        else {
            panic!("not providers")
        };
        assert_eq!(
            drain,
            ProvidersCommand::Drain {
                id: 7,
                deadline: Duration::from_secs(120)
            }
        );
        let Command::Watch(watch) = parse(&[
            "watch",
            "--from",
            "9",
            "--namespace",
            "a",
            "--namespace",
            "b.c",
        ])
        .unwrap()
        .cli
        .command
        else {
            panic!("not watch")
        };
        assert_eq!(watch.from, 9);
        assert_eq!(watch.namespace, ["a", "b.c"]);
    }

    /// Usage errors are clap errors with exit code 2; help exits 0.
    /// Steps: parse a missing `--group`, a bad id, a bad output format, a bad
    /// timeout and `--help`; check each error's exit code.
    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["namespaces", "reserve", "acme"][..],
            &["cluster", "promote", "four"],
            &["cluster", "status", "-o", "yaml"],
            &["cluster", "status", "--timeout", "soon"],
            &["cluster", "status", "--timeout", "0s"],
            &["cluster"],
            &["node"],
            &["exec", "acme.upper"],
            &[
                "exec",
                "acme.upper",
                "--input",
                "{}",
                "--metadata",
                "novalue",
            ],
            &["providers", "drain", "7", "--deadline", "soon"],
            &["watch", "--from", "-1"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        assert_eq!(parse(&["--help"]).unwrap_err().exit_code(), 0);
    }
}
