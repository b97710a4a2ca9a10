//! Discovery through a real DNS server: A records of one name, SRV records of
//! `_orrery._tcp.NAME`, and records that change while the provider runs.

use std::net::Ipv4Addr;
use std::time::Duration;

use orrery_sdk::client::{Client, ClientConfig};
use orrery_sdk::discovery::resolve;
use orrery_sdk::{ConnectionState, Discovery};

use crate::dns::DnsServer;
use crate::harness::{
    by_dns_a, config, execute_eventually, execute_eventually_with, gone_everywhere, hi, hi_upper,
    three_nodes, upper, Running,
};

const ZONE: &str = "orrery.test.";

fn ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

/// A provider finds the cluster by the A records of one name and by SRV
/// records, registers, and its module answers through every node.
///
/// Steps: start three nodes on 127.0.0.1-3 at one port; serve
/// `nodes.orrery.test` A 127.0.0.1-3, and `_orrery._tcp.orrery.test` SRV to
/// `n1..n3.orrery.test` (each with its A record); run provider `dnsa` with
/// A discovery and provider `dnssrv` with SRV discovery, both asking that
/// DNS server; wait until both are Active; call `dnsa.upper` and
/// `dnssrv.upper` through each node and get `"HI"`; resolve the SRV records
/// for a caller and list both modules through it; stop both and check
/// that their modules are gone from every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_cluster_by_a_and_srv_records() {
    let (cluster, port) = three_nodes();
    let dns = DnsServer::start(ZONE).await;
    dns.set_a("nodes.orrery.test.", &[ip(1), ip(2), ip(3)])
        .await;
    for i in 1..=3u8 {
        dns.set_a(&format!("n{i}.orrery.test."), &[ip(i)]).await;
    }
    dns.set_srv(
        "_orrery._tcp.orrery.test.",
        &[
            (10, 5, port, "n1.orrery.test."),
            (10, 5, port, "n2.orrery.test."),
            (20, 5, port, "n3.orrery.test."),
        ],
    )
    .await;

    let by_a = by_dns_a("dnsa", &dns, port);
    let mut by_srv = config(
        "dnssrv",
        Discovery::DnsSrv {
            name: "orrery.test".into(),
        },
    );
    by_srv.dns_server = Some(dns.addr);
    let mut a = Running::start(by_a, vec![upper()]);
    let mut srv = Running::start(by_srv, vec![upper()]);
    a.active().await;
    srv.active().await;

    for addr in &cluster.addrs {
        assert_eq!(
            execute_eventually(addr, "dnsa.upper", hi()).await,
            hi_upper()
        );
        assert_eq!(
            execute_eventually(addr, "dnssrv.upper", hi()).await,
            hi_upper()
        );
    }

    // A caller finds the cluster by the same records.
    let by_dns = ClientConfig::new(
        resolve(
            &Discovery::DnsSrv {
                name: "orrery.test".into(),
            },
            Some(dns.addr),
        )
        .await
        .unwrap(),
    );
    assert_eq!(by_dns.endpoints.len(), 3, "{:?}", by_dns.endpoints);
    assert_eq!(
        by_dns.endpoints[2], cluster.addrs[2],
        "priority 20 comes last"
    );
    let listed = Client::new(by_dns).unwrap().list_modules("").await.unwrap();
    let names: Vec<_> = listed.iter().map(|m| m.qualified_name.as_str()).collect();
    assert_eq!(names, ["dnsa.upper", "dnssrv.upper"]);

    a.stop().await.unwrap();
    srv.stop().await.unwrap();
    gone_everywhere(&cluster.addrs, "dnsa.upper").await;
    gone_everywhere(&cluster.addrs, "dnssrv.upper").await;
}

/// A provider follows its DNS records: when they move from node A to nodes
/// B and C and A dies, it re-resolves and re-attaches through B or C, with
/// the same connection.
///
/// Steps: three nodes; `nodes.orrery.test` A names only node 1; run a
/// provider with A discovery and wait until it is Active on node 1; change
/// the records to nodes 2 and 3 only; SIGKILL node 1; wait until the
/// provider is Active on node 2 or 3 with the same connection id; call its
/// module through node 2, and through a caller built by discovery while
/// the records named only node 1 (it finds the new nodes by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_changed_dns_records() {
    let (mut cluster, port) = three_nodes();
    let dns = DnsServer::start(ZONE).await;
    dns.set_a("nodes.orrery.test.", &[ip(1)]).await;
    let by_a = by_dns_a("moving", &dns, port);
    let dns_server = by_a.dns_server;
    let discovery = by_a.discovery.clone();
    let mut provider = Running::start(by_a, vec![upper()]);
    let (connection, node) = provider.active().await;
    assert_eq!(node, 1, "only node 1 is in DNS");
    let mut budget = ClientConfig::new(Vec::new());
    budget.timeout = Duration::from_secs(10);
    let caller = Client::discover(discovery, dns_server, budget)
        .await
        .unwrap();
    assert_eq!(
        execute_eventually_with(&caller, "moving.upper", hi()).await,
        hi_upper()
    );

    dns.set_a("nodes.orrery.test.", &[ip(2), ip(3)]).await;
    cluster.kill(1);
    let moved = provider
        .wait_for(
            "Active on node 2 or 3",
            |s| matches!(s, ConnectionState::Active { node, .. } if *node != 1),
        )
        .await;
    assert_eq!(moved.connection_id(), Some(connection));
    assert_eq!(
        execute_eventually(&cluster.addrs[1], "moving.upper", hi()).await,
        hi_upper()
    );
    // The caller that knew only node 1 finds nodes 2 and 3 by the new records.
    assert_eq!(
        caller.execute("moving.upper", hi()).await.unwrap(),
        hi_upper()
    );
    provider.stop().await.unwrap();
}
