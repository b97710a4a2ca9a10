//! `orrery`, the command line of an Orrery cluster: what an operator runs
//! against a running cluster.
//!
//! - [`args`]: the grammar (clap): global options and every command.
//! - [`config`]: settings from flags, `ORRERY_*` variables, the config file
//!   and defaults, in that order of precedence.
//! - [`client`]: the connection to a cluster (the SDK's caller client), with endpoint failover,
//!   leader hints, time budgets and request ids; usable for any service.
//! - [`cmd`]: one module per command group, turning arguments into requests.
//! - [`output`]: the views of the answers, as tables or stable JSON.
//! - [`errors`]: every error, and the exit code each maps to.
//!
//! The flow of one run is [`main_with_args`]: parse, resolve settings,
//! build a [`client::Client`], run the command, print the text, and exit
//! with 0, or print one `error: ...` line and exit with the code from
//! [`errors::CliError::exit_code`].

pub mod args;
pub mod client;
pub mod cmd;
pub mod config;
pub mod errors;
pub mod logging;
pub mod output;

use args::{Command, ConfigCommand, Invocation};
use client::Client;
use config::{Settings, Source};
use errors::CliError;

/// Runs a parsed command line and returns the text to print. `watch`
/// prints its events as they come and returns no text.
pub async fn run(invocation: Invocation) -> Result<String, CliError> {
    let Invocation { cli, sources } = invocation;
    let file = config::load(cli.global.config.as_deref())?;
    let settings = Settings::resolve(&cli.global, &sources, file.as_ref())?;
    let format = settings.output;
    match cli.command {
        Command::Config(ConfigCommand::Show) => Ok(output::render(
            format,
            &output::settings::SettingsView::from(&settings),
        )),
        Command::Cluster(command) => {
            let client = Client::new(settings.client_config())?;
            Ok(cmd::cluster::run(&client, format, command).await?)
        }
        Command::Namespaces(command) => {
            let client = Client::new(settings.client_config())?;
            Ok(cmd::namespaces::run(&client, format, command).await?)
        }
        Command::Providers(command) => {
            let client = Client::new(settings.client_config())?;
            Ok(cmd::providers::run(&client, format, command).await?)
        }
        Command::Modules(command) => {
            let client = Client::new(settings.client_config())?;
            Ok(cmd::modules::run(&client, format, command).await?)
        }
        Command::Exec(args) => {
            let mut config = settings.client_config();
            if settings.timeout_source == Source::Default {
                config.timeout = cmd::exec::DEFAULT_TIMEOUT;
            }
            cmd::exec::run(&Client::new(config)?, format, args).await
        }
        Command::Watch(args) => {
            let client = Client::new(settings.client_config())?;
            let ctrl_c = async {
                // Without a signal handler, only the server ends the watch.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            cmd::watch::run(&client, format, args, &mut std::io::stdout(), ctrl_c).await?;
            Ok(String::new())
        }
        Command::Node(args) => {
            logging::init(args.log_format);
            cmd::node::run(args).await
        }
        Command::Dev(args) => {
            logging::init(args.log_format);
            cmd::dev::run(args).await
        }
    }
}

/// The whole program: parses `args` (the first is the program name), runs
/// the command on a tokio runtime, prints the answer on standard
/// output or one error line on standard error, and returns the exit code.
/// `node` and `dev` run on a multi-threaded runtime until a stop signal.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let invocation = match args::parse_from(args) {
        Ok(invocation) => invocation,
        Err(error) => {
            // Help and version go to stdout with code 0, usage errors to
            // stderr with code 2.
            let _ = error.print();
            return u8::try_from(error.exit_code()).unwrap_or(errors::EXIT_USAGE);
        }
    };
    // Nodes get every core; a client command needs one thread.
    let runtime = match invocation.cli.command {
        Command::Node(_) | Command::Dev(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return errors::EXIT_REFUSED;
        }
    };
    let outcome = runtime
        .block_on(run(invocation))
        .and_then(|text| output::print(&text).map_err(CliError::from));
    match outcome {
        Ok(()) => errors::EXIT_OK,
        Err(error) => {
            eprintln!("{}", error.report_line());
            error.exit_code()
        }
    }
}
