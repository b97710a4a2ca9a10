//! The `orrery` binary as a script sees it: settings precedence through
//! real flags, variables and files; exact output; exit codes; one-line
//! errors.

use std::path::Path;

use crate::support::{closed_endpoint, Behaviour, FakeNode, WatchScript};
use orrery_proto::pb;

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `orrery ARGS` with `HOME` set to `home`, no `ORRERY_*` or
/// `XDG_CONFIG_HOME` from the test's environment, and `env` added.
async fn orrery(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery"));
    command.args(args).env("HOME", home);
    for var in [
        "ORRERY_ENDPOINTS",
        "ORRERY_OUTPUT",
        "ORRERY_TIMEOUT",
        "ORRERY_CONFIG",
        "XDG_CONFIG_HOME",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let output = command.output().await.unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Flag > variable > file > default, through the real binary.
/// Steps: write `~/.config/orrery/config.toml` (endpoints, output,
/// timeout); run `config show` with nothing else, then with
/// `ORRERY_ENDPOINTS` and `ORRERY_TIMEOUT`, then with flags on top; compare
/// the whole JSON each time.
#[tokio::test]
async fn settings_precedence_flag_env_file_default() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/orrery");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        "endpoints = [\"f1:7400\", \"f2:7400\"]\noutput = \"json\"\ntimeout = \"2s\"\n",
    )
    .unwrap();
    let file = file.display().to_string();

    let expected = |endpoints: &str, e_src: &str, timeout: &str, t_src: &str| {
        format!(
            "{{\n  \"endpoints\": {{\n    \"value\": [\n{endpoints}\n    ],\n    \
             \"source\": \"{e_src}\"\n  }},\n  \"output\": {{\n    \"value\": \"json\",\n    \
             \"source\": \"file {file}\"\n  }},\n  \"timeout\": {{\n    \"value\": \"{timeout}\",\n    \
             \"source\": \"{t_src}\"\n  }},\n  \"config_file\": \"{file}\"\n}}\n"
        )
    };

    let from_file = orrery(home.path(), &["config", "show"], &[]).await;
    assert_eq!(from_file.code, 0, "{from_file:?}");
    assert_eq!(
        from_file.stdout,
        expected(
            "      \"f1:7400\",\n      \"f2:7400\"",
            &format!("file {file}"),
            "2s",
            &format!("file {file}")
        )
    );

    let env = [
        ("ORRERY_ENDPOINTS", "e1:7400,e2:7400"),
        ("ORRERY_TIMEOUT", "750ms"),
    ];
    let from_env = orrery(home.path(), &["config", "show"], &env).await;
    assert_eq!(
        from_env.stdout,
        expected(
            "      \"e1:7400\",\n      \"e2:7400\"",
            "env ORRERY_ENDPOINTS",
            "750ms",
            "env ORRERY_TIMEOUT"
        )
    );

    let from_flags = orrery(
        home.path(),
        &["config", "show", "--endpoints", "x:1", "--timeout", "1m"],
        &env,
    )
    .await;
    assert_eq!(
        from_flags.stdout,
        expected("      \"x:1\"", "flag", "60s", "flag")
    );
}

/// With no file, no variable and no flag, the defaults apply; a table is
/// the default output.
/// Steps: run `config show` in an empty home.
#[tokio::test]
async fn defaults_without_any_configuration() {
    let home = tempfile::tempdir().unwrap();
    let run = orrery(home.path(), &["config", "show"], &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "\
endpoints    127.0.0.1:7400  (default)
output       table  (default)
timeout      5s  (default)
config file  none
"
    );
}

/// Configuration mistakes exit 2 with one `error:` line; clap usage errors
/// exit 2 too.
/// Steps: a missing `--config` file, a config file with an unknown key, a
/// bad endpoint, a missing required option.
#[tokio::test]
async fn configuration_and_usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing.toml");
    let run = orrery(
        home.path(),
        &["--config", missing.to_str().unwrap(), "cluster", "status"],
        &[],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: cannot read config file "));
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "endpoint = \"a:1\"\n").unwrap();
    let run = orrery(
        home.path(),
        &["cluster", "status"],
        &[("ORRERY_CONFIG", bad.to_str().unwrap())],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("unknown field `endpoint`"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    let run = orrery(
        home.path(),
        &["--endpoints", "no-port", "cluster", "status"],
        &[],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid endpoint \"no-port\": expected HOST:PORT\n"
    );

    let run = orrery(home.path(), &["namespaces", "reserve", "acme"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--group"), "{run:?}");
    assert!(run.stdout.is_empty());
}

/// No endpoint answering exits 3 with one `error:` line naming UNAVAILABLE.
/// Steps: run `cluster status` against a closed port with a 300 ms budget.
#[tokio::test]
async fn nothing_listening_exits_3() {
    let home = tempfile::tempdir().unwrap();
    let closed = closed_endpoint().await;
    let run = orrery(
        home.path(),
        &[
            "--endpoints",
            &closed,
            "--timeout",
            "300ms",
            "cluster",
            "status",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cluster unavailable: no endpoint answered within 300ms: "),
        "{run:?}"
    );
    assert!(run.stderr.ends_with(" (UNAVAILABLE)\n"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1);
    assert!(run.stdout.is_empty());
}

/// Against a node: an answer prints exactly the documented JSON and exits
/// 0; a refusal prints one line with the code and exits 1.
/// Steps: `namespaces get acme -o json` on an answering node (reached
/// through a leader hint); `namespaces reserve` on a node that refuses with
/// NAMESPACE_OWNED.
#[tokio::test]
async fn answers_and_refusals_through_the_binary() {
    let home = tempfile::tempdir().unwrap();
    let leader = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    let follower = FakeNode::start(Behaviour::NotLeader {
        leader: Some((2, leader.endpoint())),
    })
    .await;
    let run = orrery(
        home.path(),
        &["namespaces", "get", "acme", "-o", "json"],
        &[("ORRERY_ENDPOINTS", &follower.endpoint())],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        r#"{
  "namespace": "acme",
  "owner_group": "billing",
  "owner_connection_id": null,
  "reserved": true,
  "epoch": 1,
  "modified_revision": 5
}
"#
    );
    assert!(run.stderr.is_empty(), "{run:?}");

    let owner = FakeNode::start(Behaviour::Refuse {
        code: pb::ErrorCode::NamespaceOwned,
        grpc: tonic::Code::AlreadyExists,
        message: "namespace \"acme\" is owned by group \"search\"".into(),
    })
    .await;
    let run = orrery(
        home.path(),
        &[
            "--endpoints",
            &owner.endpoint(),
            "ns",
            "reserve",
            "acme",
            "--group",
            "billing",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: namespace \"acme\" is owned by group \"search\" (NAMESPACE_OWNED)\n"
    );
    assert!(run.stdout.is_empty());
}

/// `exec` with an input that does not fit the module's input type exits 2
/// with the codec's path, and never calls Execute; an `ExecutionError`
/// exits 1 with `error: <CODE>: <message>`.
/// Steps: exec `acme.upper` with `text` as a number; check the exit code,
/// the stderr line and the node's calls; exec `acme.fail` with a good
/// input; check the exit code, stderr and stdout.
#[tokio::test]
async fn exec_failures_through_the_binary() {
    let home = tempfile::tempdir().unwrap();
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let endpoints = [("ORRERY_ENDPOINTS", node.endpoint())];
    let env: Vec<(&str, &str)> = endpoints.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let run = orrery(
        home.path(),
        &[
            "exec",
            "acme.upper",
            "--input",
            r#"{"text": 5, "times": 2}"#,
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid --input for acme.upper: $.text: expected String, found JSON number\n"
    );
    assert!(run.stdout.is_empty());
    let methods: Vec<&str> = node.calls().iter().map(|c| c.method).collect();
    assert_eq!(methods, ["get_module"]);

    let run = orrery(
        home.path(),
        &[
            "exec",
            "acme.fail",
            "--input",
            r#"{"text": "a", "times": 1}"#,
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "error: RUNTIME_ERROR: upper exploded\n");
    assert!(run.stdout.is_empty());
    let methods: Vec<&str> = node.calls().iter().map(|c| c.method).collect();
    assert_eq!(methods, ["get_module", "get_module", "execute"]);
}

/// `watch` through the binary: the server ending the stream exits 0 after
/// the events; a compacted start exits 1 with one `error:` line.
/// Steps: script one event and the end; run `watch`; script `compacted`;
/// run `watch --from 2`; compare exit codes and both streams.
#[tokio::test]
async fn watch_through_the_binary() {
    let home = tempfile::tempdir().unwrap();
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let endpoint = node.endpoint();
    let env = [("ORRERY_ENDPOINTS", endpoint.as_str())];
    node.set_watch(WatchScript {
        messages: vec![pb::WatchResponse {
            body: Some(pb::watch_response::Body::Event(pb::WatchEvent {
                revision: 4,
                kind: pb::ChangeKind::ModuleRemoved as i32,
                key: "acme.old".into(),
                object: None,
            })),
        }],
        then_break: false,
    });
    let run = orrery(home.path(), &["watch"], &env).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "4 MODULE_REMOVED acme.old\n");
    assert!(run.stderr.is_empty(), "{run:?}");

    node.set_watch(WatchScript {
        messages: vec![pb::WatchResponse {
            body: Some(pb::watch_response::Body::Compacted(pb::WatchCompacted {
                oldest_revision: 10,
                current_revision: 12,
            })),
        }],
        then_break: false,
    });
    let run = orrery(home.path(), &["watch", "--from", "2"], &env).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert_eq!(
        run.stderr,
        "error: watch from revision 2 is compacted: the oldest kept revision is 10 \
         (current 12); list the current state and watch from its revision + 1\n"
    );
}
