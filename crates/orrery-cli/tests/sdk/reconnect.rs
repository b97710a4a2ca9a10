//! The node a provider's control stream is attached to dies (SIGKILL) or
//! hangs (SIGSTOP), and the lease runs out when no node can be reached.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orrery_proto::pb;
use orrery_sdk::client::{Client, ClientConfig};
use orrery_sdk::{ConnectionState, Discovery};

use crate::dns::DnsServer;
use crate::harness::{
    by_dns_a, caller, config, connections, execute_eventually, hi, hi_upper, three_nodes, upper,
    Running, LEASE_TTL,
};
use crate::support::PATIENCE;

/// The provider re-attaches its connection to another node before the
/// lease runs out: the connection is never expired nor registered twice,
/// and the module stays callable through the surviving nodes.
///
/// Steps: three nodes; a provider with a static list of all three, the
/// leader first, and a 3 s lease; wait until Active (connection C on node
/// N, the leader) and the module answers
/// everywhere; record every state the provider goes through and watch the
/// registry's changes from the registration on (through all nodes); SIGKILL
/// node N; wait until the provider is Active on another node, with
/// connection C and having passed through Reconnecting; for twice the
/// lease, call the module through both survivors (every call answers);
/// check that the namespace has exactly one connection, C, with its
/// generation, and that the watch saw no change of C; stop the provider and
/// see the watch report C removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattaches_when_its_node_is_killed() {
    let (mut cluster, _) = three_nodes();
    // The leader first: the provider attaches where it registered, so the kill
    // takes the leader too, and the re-attach waits for an election (long
    // enough for every state on the way to be seen).
    let leader = cluster.addrs[cluster.leader() as usize - 1].clone();
    let mut nodes = vec![leader.clone()];
    nodes.extend(cluster.addrs.iter().filter(|a| **a != leader).cloned());
    let mut provider = Running::start(config("survivor", Discovery::Static(nodes)), vec![upper()]);
    let (connection, node) = provider.active().await;
    for addr in &cluster.addrs {
        assert_eq!(
            execute_eventually(addr, "survivor.upper", hi()).await,
            hi_upper()
        );
    }
    let before = connections(&cluster.addrs, "survivor").await;
    assert_eq!(before.len(), 1);
    let generation = before[0].generation;

    let mut states = provider.state.clone();
    let recorder = tokio::spawn(async move {
        let mut seen = Vec::new();
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            let done = matches!(state, ConnectionState::Active { .. });
            seen.push(state);
            if done {
                break;
            }
        }
        seen
    });
    let mut watch_config = ClientConfig::new(cluster.addrs.clone());
    watch_config.timeout = Duration::from_secs(10);
    let watcher = Client::new(watch_config).unwrap();
    let from = before[0].registered_revision + 1;
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen_changes = changes.clone();
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher.watch(from));
        while let Some(event) = events.next().await {
            let event = event.expect("the watch follows the cluster");
            if event.key == connection.to_string() {
                seen_changes.lock().unwrap().push(event.kind());
            }
        }
    });

    cluster.kill(node);
    let killed_at = Instant::now();
    let moved = provider
        .wait_for(
            "Active on another node",
            |s| matches!(s, ConnectionState::Active { node: now, .. } if *now != node),
        )
        .await;
    assert_eq!(moved.connection_id(), Some(connection));
    let seen = recorder.await.unwrap();
    assert!(
        seen.iter().any(|s| matches!(
            s,
            ConnectionState::Reconnecting { connection_id, .. } if *connection_id == connection
        )),
        "no Reconnecting in {seen:?}"
    );
    assert!(
        !seen.contains(&ConnectionState::Registering),
        "registered again: {seen:?}"
    );

    let survivors: Vec<String> = (1..=3)
        .filter(|id| *id != node)
        .map(|id| cluster.addrs[id as usize - 1].clone())
        .collect();
    let callers: Vec<_> = survivors.iter().map(|a| caller(a)).collect();
    while killed_at.elapsed() < LEASE_TTL * 2 {
        for (addr, client) in survivors.iter().zip(&callers) {
            let output = client.execute("survivor.upper", hi()).await;
            assert_eq!(
                output.ok(),
                Some(hi_upper()),
                "a call through {addr} failed"
            );
        }
    }

    let after = connections(&survivors, "survivor").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].connection_id, connection);
    assert_eq!(after[0].generation, generation);
    assert!(
        changes.lock().unwrap().is_empty(),
        "the connection changed: {:?}",
        changes.lock().unwrap()
    );
    provider.stop().await.unwrap();
    // The watch is alive (it followed the cluster if its node was killed): it
    // sees the deregistration.
    let start = Instant::now();
    while !changes
        .lock()
        .unwrap()
        .contains(&pb::ChangeKind::ConnectionRemoved)
    {
        assert!(start.elapsed() < PATIENCE, "the watch missed the removal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
}

/// A node that stops answering without closing the stream (SIGSTOP, as a
/// hung process or a silent partition) is left after a few heartbeat
/// intervals of silence, well before the lease runs out.
///
/// Steps: three nodes; a provider listing a follower first, so that its
/// stream lands on a follower; wait until Active on node N; SIGSTOP node N;
/// wait until the provider is Active on another node with the same
/// connection; SIGCONT node N; the namespace still has exactly that one
/// connection with its generation, and the module answers through N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_a_node_that_stops_answering() {
    let (cluster, _) = three_nodes();
    let leader = cluster.leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let first = cluster.addrs[follower as usize - 1].clone();
    let mut nodes = vec![first.clone()];
    nodes.extend(cluster.addrs.iter().filter(|a| **a != first).cloned());
    let mut provider = Running::start(config("hung", Discovery::Static(nodes)), vec![upper()]);
    let (connection, node) = provider.active().await;
    let generation = connections(&cluster.addrs, "hung").await[0].generation;

    cluster.signal(node, "STOP");
    let stopped_at = Instant::now();
    let moved = provider
        .wait_for(
            "Active on another node",
            |s| matches!(s, ConnectionState::Active { node: now, .. } if *now != node),
        )
        .await;
    let moved_after = stopped_at.elapsed();
    cluster.signal(node, "CONT");
    assert_eq!(moved.connection_id(), Some(connection));
    assert!(
        moved_after < LEASE_TTL,
        "re-attached only after {moved_after:?}"
    );
    let after = connections(&cluster.addrs, "hung").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (after[0].connection_id, after[0].generation),
        (connection, generation)
    );
    assert_eq!(
        execute_eventually(&cluster.addrs[node as usize - 1], "hung.upper", hi()).await,
        hi_upper()
    );
    provider.stop().await.unwrap();
}

/// When the lease did run out (no node could be reached for longer than the
/// TTL), the provider registers again, once: a new connection replaces the
/// expired one.
///
/// Steps: three nodes; DNS names only a follower F; run a provider with A
/// discovery; wait until Active on F (connection C); SIGSTOP F, so that the
/// provider reaches no node; wait until the cluster has expired C (no
/// connection in the namespace, read through the other nodes); change the
/// records to the other two nodes; wait until the provider is Active with a
/// new connection, having gone through Registering; the namespace has
/// exactly that one connection and the module answers; SIGCONT F.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_again_after_its_lease_ran_out() {
    let (cluster, port) = three_nodes();
    let leader = cluster.leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let others: Vec<u64> = (1..=3).filter(|id| *id != follower).collect();
    let ip = |id: u64| Ipv4Addr::new(127, 0, 0, id as u8);
    let dns = DnsServer::start("orrery.test.").await;
    dns.set_a("nodes.orrery.test.", &[ip(follower)]).await;
    let by_a = by_dns_a("expiring", &dns, port);
    let mut provider = Running::start(by_a, vec![upper()]);
    let (first, node) = provider.active().await;
    assert_eq!(node, follower);

    let mut states = provider.state.clone();
    let recorder = tokio::spawn(async move {
        let mut seen = Vec::new();
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            let done = matches!(state, ConnectionState::Active { connection_id, .. } if connection_id != first);
            seen.push(state);
            if done {
                break;
            }
        }
        seen
    });
    cluster.signal(follower, "STOP");
    let reachable: Vec<String> = others
        .iter()
        .map(|id| cluster.addrs[*id as usize - 1].clone())
        .collect();
    let start = Instant::now();
    while !connections(&reachable, "expiring").await.is_empty() {
        assert!(start.elapsed() < PATIENCE, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dns.set_a(
        "nodes.orrery.test.",
        &others.iter().map(|id| ip(*id)).collect::<Vec<_>>(),
    )
    .await;
    let again = provider
        .wait_for("Active with a new connection", |s| {
            matches!(s, ConnectionState::Active { connection_id, .. } if *connection_id != first)
        })
        .await;
    let seen = recorder.await.unwrap();
    assert!(
        seen.contains(&ConnectionState::Registering),
        "no Registering in {seen:?}"
    );
    let now = connections(&reachable, "expiring").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(Some(now[0].connection_id), again.connection_id());
    assert_eq!(
        execute_eventually(&reachable[0], "expiring.upper", hi()).await,
        hi_upper()
    );
    cluster.signal(follower, "CONT");
    provider.stop().await.unwrap();
}
