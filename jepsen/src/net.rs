//! The test network: a bridge in the root namespace (the runner's address
//! `10.77.0.1`), one network namespace per node joined to it by a veth
//! pair, and the iptables rules that cut links inside those namespaces.
//!
//! Every name this module creates starts with `orj` so that a run can remove
//! what a crashed earlier run left behind.

use anyhow::{bail, Context};
use tokio::process::Command;

/// The bridge's name.
const BRIDGE: &str = "orjbr0";
/// The prefix of every network namespace.
const NETNS_PREFIX: &str = "orj-n";
/// The comment on the root namespace's forwarding rule.
const RULE_COMMENT: &str = "orrery-jepsen";
/// The first three octets of every address.
const SUBNET: &str = "10.77.0";

/// The runner's address on the bridge.
pub const RUNNER_ADDR: &str = "10.77.0.1";

/// The port every node listens on.
pub const NODE_PORT: u16 = 7400;

/// Node `id`'s network namespace.
pub fn netns(id: u64) -> String {
    format!("{NETNS_PREFIX}{id}")
}

/// Node `id`'s address.
pub fn node_ip(id: u64) -> String {
    format!("{SUBNET}.{}", 10 + id)
}

/// Node `id`'s `host:port`.
pub fn node_addr(id: u64) -> String {
    format!("{}:{NODE_PORT}", node_ip(id))
}

/// Runs a command, failing with its standard error when it exits non-zero.
pub async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and ignores how it ended (for removing what may be gone).
async fn run_quietly(program: &str, args: &[&str]) {
    let _ = run(program, args).await;
}

/// Runs `iptables` inside node `id`'s namespace.
pub async fn iptables_in(id: u64, args: &[&str]) -> anyhow::Result<()> {
    let ns = netns(id);
    let mut full = vec!["netns", "exec", ns.as_str(), "iptables", "-w"];
    full.extend_from_slice(args);
    run("ip", &full).await.map(|_| ())
}

/// Creates the bridge, the forwarding rule and a namespace per node.
pub async fn create(nodes: &[u64]) -> anyhow::Result<()> {
    run("ip", &["link", "add", BRIDGE, "type", "bridge"]).await?;
    run(
        "ip",
        &["addr", "add", &format!("{RUNNER_ADDR}/24"), "dev", BRIDGE],
    )
    .await?;
    run("ip", &["link", "set", BRIDGE, "up"]).await?;
    // Bridged frames pass the root namespace's FORWARD chain when
    // br_netfilter is loaded, whose policy may be DROP (Docker sets it).
    run("iptables", &forward_rule("-I")).await?;
    for &id in nodes {
        add_host(id).await?;
    }
    Ok(())
}

/// Creates node `id`'s namespace, its veth pair and address.
pub async fn add_host(id: u64) -> anyhow::Result<()> {
    let ns = netns(id);
    let outer = format!("orjv{id}");
    let inner = format!("orji{id}");
    run("ip", &["netns", "add", &ns]).await?;
    run(
        "ip",
        &[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ],
    )
    .await?;
    run("ip", &["link", "set", &outer, "master", BRIDGE]).await?;
    run("ip", &["link", "set", &outer, "up"]).await?;
    run("ip", &["link", "set", &inner, "netns", &ns]).await?;
    let exec = |args: &[&str]| {
        let mut full = vec!["netns", "exec", ns.as_str(), "ip"];
        full.extend_from_slice(args);
        full.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    for args in [
        exec(&["link", "set", "lo", "up"]),
        exec(&["addr", "add", &format!("{}/24", node_ip(id)), "dev", &inner]),
        exec(&["link", "set", &inner, "up"]),
    ] {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("ip", &refs).await?;
    }
    Ok(())
}

/// Removes everything a run (this one or a crashed earlier one) created:
/// kills the processes left in the namespaces, deletes the namespaces, the
/// veths, the bridge and the forwarding rule. Never fails.
pub async fn remove_all() {
    let listing = run("ip", &["netns", "list"]).await.unwrap_or_default();
    for ns in listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(NETNS_PREFIX))
    {
        let pids = run("ip", &["netns", "pids", ns]).await.unwrap_or_default();
        for pid in pids.split_whitespace() {
            run_quietly("kill", &["-KILL", pid]).await;
            run_quietly("kill", &["-CONT", pid]).await;
        }
        run_quietly("ip", &["netns", "del", ns]).await;
    }
    let links = run("ip", &["-o", "link", "show"]).await.unwrap_or_default();
    for link in links
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_string())
        .filter(|name| name.starts_with("orjv"))
    {
        run_quietly("ip", &["link", "del", &link]).await;
    }
    run_quietly("ip", &["link", "del", BRIDGE]).await;
    let rule = forward_rule("-D");
    while run("iptables", &rule).await.is_ok() {}
}

/// The root namespace's rule that lets bridged frames through, with `action`
/// (`-I` to insert, `-D` to delete).
fn forward_rule(action: &str) -> [&str; 13] {
    [
        "-w",
        action,
        "FORWARD",
        "-i",
        BRIDGE,
        "-o",
        BRIDGE,
        "-m",
        "comment",
        "--comment",
        RULE_COMMENT,
        "-j",
        "ACCEPT",
    ]
}
