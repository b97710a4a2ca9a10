//! The `orrery` binary as a user runs it: real `orrery node` and `orrery dev`
//! processes on loopback, real sled directories, SIGKILL and SIGTERM, and the
//! client commands against them.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{
    eventually, free_consecutive_ports, leader_of, orrery, orrery_json, Process, ORRERY,
};

fn namespaces_on(endpoint: &str, consistency: &str) -> Option<Vec<String>> {
    let list = orrery_json(&[
        "--endpoints",
        endpoint,
        "namespaces",
        "list",
        "--consistency",
        consistency,
    ])?;
    Some(
        list.as_array()?
            .iter()
            .filter_map(|ns| ns["namespace"].as_str().map(String::from))
            .collect(),
    )
}

/// Three node processes keep every acknowledged write through a SIGKILL of
/// the leader, and the killed node catches up when it restarts.
///
/// Steps: start three `orrery node` processes with `--initial-cluster`; wait
/// for a leader; reserve `acme.before` through a follower; SIGKILL the
/// leader; reserve `acme.after` through the survivors; restart the killed
/// node on the same data directory; wait until its own replica (a stale
/// read on it) has both namespaces, then read one linearizably through it;
/// finally SIGTERM every node and check each exits cleanly.
#[test]
fn three_processes_survive_a_leader_kill() {
    let data = tempfile::tempdir().unwrap();
    let base = free_consecutive_ports(3);
    let ports = [base, base + 1, base + 2];
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let initial = (0..3)
        .map(|i| format!("{}={}", i + 1, addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let all = (0..3).map(addr).collect::<Vec<_>>().join(",");
    let mut nodes: Vec<Option<Process>> = (0..3)
        .map(|i| Some(Process::node(i as u64 + 1, &addr(i), &initial, data.path())))
        .collect();

    let leader = eventually("a leader", || leader_of(&all));
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let before = orrery(&[
        "--endpoints",
        &addr(follower as usize - 1),
        "namespaces",
        "reserve",
        "acme.before",
        "--group",
        "g1",
    ]);
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );

    let killed = leader as usize - 1;
    nodes[killed] = None; // Drop sends SIGKILL and reaps the process.
    let survivors = (0..3)
        .filter(|i| *i != killed)
        .map(addr)
        .collect::<Vec<_>>()
        .join(",");
    let after = orrery(&[
        "--endpoints",
        &survivors,
        "--timeout",
        "20s",
        "namespaces",
        "reserve",
        "acme.after",
        "--group",
        "g2",
    ]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_ne!(eventually("a new leader", || leader_of(&survivors)), leader);

    nodes[killed] = Some(Process::node(leader, &addr(killed), &initial, data.path()));
    let caught_up = eventually("the restarted node to catch up", || {
        namespaces_on(&addr(killed), "stale").filter(|names| names.len() == 2)
    });
    assert_eq!(caught_up, ["acme.after", "acme.before"]);
    let got = orrery_json(&[
        "--endpoints",
        &addr(killed),
        "namespaces",
        "get",
        "acme.before",
    ])
    .unwrap();
    assert_eq!(got["owner_group"], "g1");

    for node in nodes.iter_mut().flatten() {
        let status = node.terminate();
        assert!(status.success(), "a node exited with {status} on SIGTERM");
    }
}

/// `orrery dev` starts a local cluster in one command, prints how to reach
/// it, serves writes and reads, and stops cleanly on SIGTERM.
///
/// Steps: start `orrery dev --nodes 3 --base-port P`; read the endpoints
/// from its `export ORRERY_ENDPOINTS=` line; wait for a leader; reserve a
/// namespace and read it back; SIGTERM the process and check it exits 0.
#[test]
fn dev_runs_a_local_cluster() {
    let base = free_consecutive_ports(3);
    let mut command = Command::new(ORRERY);
    command
        .args(["dev", "--nodes", "3", "--base-port", &base.to_string()])
        .stdout(Stdio::piped());
    let mut dev = Process::spawn(command);
    let stdout = BufReader::new(dev.child.stdout.take().unwrap());
    let endpoints = stdout
        .lines()
        .map(|line| line.unwrap())
        .find_map(|line| {
            line.trim()
                .strip_prefix("export ORRERY_ENDPOINTS=")
                .map(String::from)
        })
        .expect("dev prints its endpoints");
    assert_eq!(endpoints.split(',').count(), 3);

    eventually("a leader", || leader_of(&endpoints));
    let reserve = orrery(&[
        "--endpoints",
        &endpoints,
        "namespaces",
        "reserve",
        "dev.demo",
        "--group",
        "g",
    ]);
    assert!(
        reserve.status.success(),
        "{}",
        String::from_utf8_lossy(&reserve.stderr)
    );
    let got = orrery_json(&["--endpoints", &endpoints, "namespaces", "get", "dev.demo"]).unwrap();
    assert_eq!(got["owner_group"], "g");

    let status = dev.terminate();
    assert!(
        status.success(),
        "orrery dev exited with {status} on SIGTERM"
    );
}

/// `orrery dev --demo`, the README's main job: a local cluster and the echo provider,
/// and an `orrery exec` command printed for the user that works as printed, through
/// every node; SIGTERM stops both cleanly.
///
/// Steps: start `orrery dev --demo --base-port P`; read the endpoints and then the
/// printed `orrery exec ...` line (within the test's patience); run that line through a
/// shell with `ORRERY_ENDPOINTS` exported (expect `"Hello, Ada!"`); call `echo.area`
/// with a union input through each node (expect 7); SIGTERM and expect exit 0.
#[test]
fn dev_demo_prints_a_command_that_works() {
    let base = free_consecutive_ports(3);
    let mut command = Command::new(ORRERY);
    command
        .args(["dev", "--demo", "--base-port", &base.to_string()])
        .stdout(Stdio::piped());
    let mut dev = Process::spawn(command);
    let stdout = BufReader::new(dev.child.stdout.take().unwrap());
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_starting = |prefix: &str| loop {
        let line = printed
            .recv_timeout(support::PATIENCE)
            .unwrap_or_else(|_| panic!("orrery dev --demo printed no {prefix:?} line"));
        if line.trim().starts_with(prefix) {
            return line.trim().to_string();
        }
    };
    let endpoints = next_line_starting("export ORRERY_ENDPOINTS=")
        .trim_start_matches("export ORRERY_ENDPOINTS=")
        .to_string();
    let exec_line = next_line_starting("orrery exec");

    let as_printed = Command::new("sh")
        .arg("-c")
        .arg(exec_line.replacen("orrery", ORRERY, 1))
        .env("ORRERY_ENDPOINTS", &endpoints)
        .output()
        .unwrap();
    assert!(
        as_printed.status.success(),
        "{exec_line}: {}",
        String::from_utf8_lossy(&as_printed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&as_printed.stdout).trim(),
        "\"Hello, Ada!\""
    );

    let rectangle = r#"{"Rectangle": {"width": 2, "height": 3.5}}"#;
    for endpoint in endpoints.split(',') {
        let area = orrery(&[
            "--endpoints",
            endpoint,
            "exec",
            "echo.area",
            "--input",
            rectangle,
        ]);
        assert!(area.status.success(), "{area:?}");
        let value: f64 = String::from_utf8_lossy(&area.stdout)
            .trim()
            .parse()
            .unwrap();
        assert_eq!(value, 7.0, "through {endpoint}");
    }

    let status = dev.terminate();
    assert!(status.success(), "orrery dev --demo exited with {status}");
}
