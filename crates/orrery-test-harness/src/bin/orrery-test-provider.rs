//! `orrery-test-provider`: a provider speaking the raw provider protocol, for tests.
//!
//! ```text
//! orrery-test-provider --node HOST:PORT[,HOST:PORT...] --namespace NS [--group G]
//!     [--listen 127.0.0.1:0] --module NAME:KIND[:VERSION] [--module ...] [--version V]
//!     [--lease-ttl-ms N] [--client-id ID] [--no-heartbeat] [--hang | --fail | --fail-ratio R]
//!     [--canary [--canary-steps P,P,..] [--canary-window-ms N] [--canary-min-success R]
//!               [--canary-max-latency-ms N] [--canary-min-calls N]]
//! ```
//!
//! - `--node`: the nodes, tried in order for `Register`; the control stream moves to the
//!   next one when its node fails.
//! - `--module`: KIND is `upper` (String -> String), `add` (Product{a: Int, b: Int} -> Int)
//!   or `echo` (String -> String); VERSION defaults to `--version` (default `1.0.0`).
//! - `--no-heartbeat`: attach but never heartbeat. `--hang`: calls are never answered.
//!   `--fail`: calls answer RUNTIME_ERROR "failing on purpose". `--fail-ratio R` fails
//!   that share (0.0-1.0) of each module's calls, evenly spread (0.3: calls 4, 7, 10, ..).
//! - `--canary`: register with a canary policy (`RegisterRequest.canary`); the
//!   `--canary-*` flags set its fields, 0 or absent taking the cluster's defaults.
//!
//! Prints one JSON object per line on stdout: `{"event":"listening",..}`, every register
//! event (`{"stage":"COMMITTED","connection_id":..,"generation":..,"revision":..}`),
//! `attached`, `detached`, `executed` (per call), `drain` and `deregistered`. A drain
//! request or SIGTERM deregisters and exits 0. Exit codes: 1 bad setup, 2 no node
//! answered, 3 registration FAILED, 4 control stream refused, 5 deregistration failed.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use orrery_proto::pb;
use orrery_test_harness::provider::run_session;
use orrery_test_harness::provider::serve_executor;
use orrery_test_harness::provider::Behaviour;
use orrery_test_harness::provider::DeclaredModule;
use orrery_test_harness::provider::Executor;
use orrery_test_harness::provider::SessionConfig;
use serde_json::json;
use tokio::signal::unix::signal;
use tokio::signal::unix::SignalKind;
use tokio_util::sync::CancellationToken;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "orrery-test-provider", about = "A provider for tests")]
struct Args {
    /// The nodes, `host:port`, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    node: Vec<String>,
    /// The namespace of the modules.
    #[arg(long)]
    namespace: String,
    /// The provider group.
    #[arg(long, default_value = "")]
    group: String,
    /// Where the executor listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A module, `NAME:KIND[:VERSION]`; repeatable.
    #[arg(long = "module", required = true)]
    modules: Vec<String>,
    /// The version of the modules declared without one.
    #[arg(long, default_value = orrery_test_harness::provider::executor::DEFAULT_VERSION)]
    version: String,
    /// The lease TTL to ask for; 0: the cluster default.
    #[arg(long, default_value_t = 0)]
    lease_ttl_ms: u64,
    /// The client id of the request ids; default: a random UUID.
    #[arg(long)]
    client_id: Option<String>,
    /// Attach but never heartbeat.
    #[arg(long)]
    no_heartbeat: bool,
    /// Never answer a call.
    #[arg(long, conflicts_with_all = ["fail", "fail_ratio"])]
    hang: bool,
    /// Answer every call with RUNTIME_ERROR.
    #[arg(long, conflicts_with = "fail_ratio")]
    fail: bool,
    /// Answer this share (0.0-1.0) of the calls with RUNTIME_ERROR, evenly spread.
    #[arg(long)]
    fail_ratio: Option<f64>,
    /// Register with a canary policy.
    #[arg(long)]
    canary: bool,
    /// The canary's share of calls at each step, in percent.
    #[arg(long, value_delimiter = ',', requires = "canary")]
    canary_steps: Vec<u32>,
    /// How long each step is observed, in milliseconds.
    #[arg(long, default_value_t = 0, requires = "canary")]
    canary_window_ms: u64,
    /// The lowest acceptable share of successful calls in a window (0.0-1.0).
    #[arg(long, default_value_t = 0.0, requires = "canary")]
    canary_min_success: f64,
    /// The highest acceptable p99 latency in a window, in milliseconds.
    #[arg(long, default_value_t = 0, requires = "canary")]
    canary_max_latency_ms: u64,
    /// The fewest calls a window must see before it is judged.
    #[arg(long, default_value_t = 0, requires = "canary")]
    canary_min_calls: u32,
}

impl Args {
    /// The declared modules, with `--version` for those that name none.
    fn modules(&self) -> Result<Vec<DeclaredModule>, String> {
        self.modules
            .iter()
            .map(|m| DeclaredModule::parse(m, &self.version))
            .collect()
    }

    /// How calls are answered.
    fn behaviour(&self) -> Result<Behaviour, String> {
        Ok(match (self.hang, self.fail, self.fail_ratio) {
            (true, _, _) => Behaviour::Hang,
            (_, true, _) => Behaviour::Fail,
            (_, _, Some(ratio)) if (0.0..=1.0).contains(&ratio) => Behaviour::FailShare {
                per_mille: (ratio * 1000.0).round() as u32,
            },
            (_, _, Some(ratio)) => return Err(format!("--fail-ratio {ratio} is not within 0-1")),
            _ => Behaviour::Answer,
        })
    }

    /// The canary policy to register with, if `--canary`.
    fn canary_policy(&self) -> Option<pb::CanaryPolicy> {
        self.canary.then(|| pb::CanaryPolicy {
            steps_percent: self.canary_steps.clone(),
            observation_window_ms: self.canary_window_ms,
            min_success_ratio: self.canary_min_success,
            max_latency_ms: self.canary_max_latency_ms,
            min_calls_per_window: self.canary_min_calls,
        })
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let code = run(args).await;
    std::process::exit(code);
}

/// Runs the provider and returns the exit code once every line is printed.
async fn run(args: Args) -> i32 {
    let (events, mut lines) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let printer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    });
    let code = serve(args, events).await;
    let _ = printer.await;
    code
}

async fn serve(args: Args, events: orrery_test_harness::provider::Events) -> i32 {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(e) => return fail(1, format!("cannot watch SIGTERM: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(1, format!("cannot listen on {}: {e}", args.listen)),
    };
    let endpoint = match listener.local_addr() {
        Ok(address) => address.to_string(),
        Err(e) => return fail(1, format!("no local address: {e}")),
    };
    let _ = events.send(json!({"event": "listening", "endpoint": endpoint}));

    let (modules, behaviour) = match args.modules().and_then(|m| Ok((m, args.behaviour()?))) {
        Ok(parsed) => parsed,
        Err(e) => return fail(1, e),
    };
    let executor = Executor::new(&modules, behaviour, events.clone());
    let in_flight = executor.in_flight();
    let server = tokio::spawn(serve_executor(listener, executor, CancellationToken::new()));

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        terminate.recv().await;
        on_signal.cancel();
    });
    let canary = args.canary_policy();
    let config = SessionConfig {
        nodes: args.node,
        namespace: args.namespace,
        group: args.group,
        executor_endpoint: endpoint,
        modules,
        lease_ttl_ms: args.lease_ttl_ms,
        client_id: args
            .client_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        heartbeat: !args.no_heartbeat,
        canary,
    };
    let outcome = run_session(config, in_flight, events, shutdown).await;
    // Calls may hang forever (`--hang`): stop the server without waiting for them.
    server.abort();
    let _ = server.await;
    match outcome {
        Ok(()) => 0,
        Err(e) => fail(e.exit_code(), e.to_string()),
    }
}

/// Reports `message` on stderr and returns `code`.
fn fail(code: i32, message: String) -> i32 {
    eprintln!("orrery-test-provider: {message}");
    code
}
