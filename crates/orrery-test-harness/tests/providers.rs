//! Real provider processes (`orrery-test-provider`) against an in-process 3-node cluster:
//! Execute through every node, expiry after SIGKILL within its TTL, no expiry across a
//! leader change, a namespace race, a group sharing calls and surviving a member, drain.

mod support;

use std::collections::HashSet;
use std::time::Duration;
use std::time::Instant;

use orrery_proto::pb;
use orrery_proto::pb::cluster_admin_client::ClusterAdminClient;
use orrery_test_harness::TestCluster;
use orrery_types::wire::from_pb;
use orrery_types::CValue;
use serde_json::Value as Json;
use support::execute;
use support::nodes;
use support::registry;
use support::Provider;

/// Calls `acme.upper` (or `qualified`) with `text` through the node at `addr`: the output
/// and the connection that served it, or the call's error.
async fn upper(
    addr: &str,
    qualified: &str,
    text: &str,
) -> Result<(String, u64), pb::ExecutionError> {
    let answer = execute(&mut registry(addr).await, qualified, text).await;
    match answer.result.unwrap() {
        pb::execute_module_response::Result::Output(out) => {
            let CValue::String(s) = from_pb(out).unwrap() else {
                panic!("upper answered a non-string")
            };
            Ok((s, answer.connection_id))
        }
        pb::execute_module_response::Result::Error(e) => Err(e),
    }
}

/// Whether connection `id` is still registered, linearizably, as the node at `addr` says.
async fn registered(addr: &str, id: u64) -> bool {
    match registry(addr)
        .await
        .get_provider(pb::GetProviderRequest {
            connection_id: id,
            ..Default::default()
        })
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == tonic::Code::NotFound => false,
        Err(s) => panic!("get_provider failed: {s}"),
    }
}

async fn module_names(addr: &str) -> Vec<String> {
    registry(addr)
        .await
        .list_modules(pb::ListModulesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .modules
        .into_iter()
        .map(|m| m.qualified_name)
        .collect()
}

/// Steps: register a provider (TTL 2 s) through a follower; Execute through every node;
/// read its lease from the leader;
/// SIGKILL it; poll the leader until the connection is gone. Expect the answer on every
/// node, the expiry no earlier than TTL minus one heartbeat and renewal interval and no
/// later than TTL + 1 s, and the module gone from all three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_is_callable_everywhere_and_expires_after_sigkill_within_its_ttl() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let mut provider = Provider::spawn(
        &[cluster.addr(follower)],
        "acme",
        &["--lease-ttl-ms", "2000"],
    );
    let id = provider.wait_attached().await;
    for node in cluster.ids() {
        let (out, served_by) = upper(&cluster.addr(node), "acme.upper", "hi")
            .await
            .unwrap();
        assert_eq!((out.as_str(), served_by), ("HI", id), "through node {node}");
    }
    provider.child.start_kill().expect("SIGKILL the provider");
    let killed = Instant::now();
    let leader_addr = cluster.addr(leader);
    while registered(&leader_addr, id).await {
        assert!(killed.elapsed() < Duration::from_secs(10), "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone_after = killed.elapsed();
    // heartbeat 400 ms, renewals batched every 250 ms
    assert!(
        gone_after >= Duration::from_millis(2000 - 400 - 250),
        "expired after {gone_after:?}"
    );
    assert!(
        gone_after <= Duration::from_millis(3000),
        "expired after {gone_after:?}"
    );
    for node in cluster.ids() {
        assert!(
            module_names(&cluster.addr(node)).await.is_empty(),
            "node {node}"
        );
    }
}

/// Steps: register a provider (TTL 2 s) with every node in its list; kill the leader
/// node; wait for a new leader; watch for twice the TTL. Expect the connection to stay
/// registered throughout and to answer calls through the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_expires_no_live_provider() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let old = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != old).unwrap();
    let first = cluster.addr(follower);
    let mut list = vec![first.clone()];
    list.extend(nodes(&cluster).into_iter().filter(|a| *a != first));
    let mut provider = Provider::spawn(&list, "acme", &["--lease-ttl-ms", "2000"]);
    let id = provider.wait_attached().await;
    cluster.kill(old).await;
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != old).collect();
    let new = cluster.leader_among(&survivors).await;
    let new_addr = cluster.addr(new);
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        assert!(
            registered(&new_addr, id).await,
            "expired across the leader change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (out, _) = upper(&new_addr, "acme.upper", "still").await.unwrap();
    assert_eq!(out, "STILL");
}

/// Steps: two lone providers race for one namespace. Expect exactly one to become Active
/// and the other to fail with NAMESPACE_OWNED, and every node to list one owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_racing_for_a_namespace_leave_exactly_one_owner() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let mut a = Provider::spawn(&all[..1], "race", &[]);
    let mut b = Provider::spawn(&all[1..2], "race", &[]);
    let final_stage = |l: &Json| l["stage"] == "ACTIVE" || l["stage"] == "FAILED";
    let ea = a.wait_line("ACTIVE or FAILED", final_stage).await;
    let eb = b.wait_line("ACTIVE or FAILED", final_stage).await;
    let stages: HashSet<_> = [ea["stage"].clone(), eb["stage"].clone()].into();
    assert_eq!(
        stages,
        HashSet::from([Json::from("ACTIVE"), Json::from("FAILED")])
    );
    let failed = if ea["stage"] == "FAILED" { &ea } else { &eb };
    assert!(failed.to_string().contains("NAMESPACE_OWNED"), "{failed}");
    for addr in &all {
        let providers = registry(addr)
            .await
            .list_providers(pb::ListProvidersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .providers;
        assert_eq!(providers.len(), 1, "node {addr}");
    }
}

/// Steps: two members of group `g` serve `shared.upper`; call it 10 times; SIGKILL one
/// member; call it 10 times more. Expect both connections to serve the first calls and
/// every later call to succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_calls_and_survives_losing_a_member() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let all = nodes(&cluster);
    let mut a = Provider::spawn(&all, "shared", &["--group", "g"]);
    let mut b = Provider::spawn(&all, "shared", &["--group", "g"]);
    let ida = a.wait_attached().await;
    let idb = b.wait_attached().await;
    let addr = cluster.addr(cluster.leader().await);
    // Both members must be routed before counting.
    let serving = |m: &pb::ModuleInfo| m.serving.len();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let module = registry(&addr)
            .await
            .get_module(pb::GetModuleRequest {
                qualified_name: "shared.upper".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .module
            .unwrap();
        if serving(&module) == 2 || Instant::now() > deadline {
            assert_eq!(serving(&module), 2);
            break;
        }
    }
    let mut served = HashSet::new();
    for i in 0..10 {
        let (_, by) = upper(&addr, "shared.upper", &format!("x{i}"))
            .await
            .unwrap();
        served.insert(by);
    }
    assert_eq!(served, HashSet::from([ida, idb]));
    a.child.start_kill().expect("SIGKILL the provider");
    let _ = a.child.wait().await;
    for i in 0..10 {
        let (out, by) = upper(&addr, "shared.upper", &format!("y{i}"))
            .await
            .unwrap();
        assert_eq!((out, by), (format!("Y{i}"), idb));
    }
}

/// Steps: register a provider; drain it through ClusterAdmin. Expect the provider to see
/// the drain, deregister and exit 0, and the connection and its module to be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_provider_deregisters_and_goes() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let addr = cluster.addr(cluster.leader().await);
    let mut provider = Provider::spawn(&nodes(&cluster), "acme", &["--lease-ttl-ms", "2000"]);
    let id = provider.wait_attached().await;
    let drained = ClusterAdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .drain_provider(pb::DrainProviderRequest {
            connection_id: id,
            deadline_ms: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        drained.provider.unwrap().state(),
        pb::ConnectionState::Draining
    );
    provider.wait_line("drain", |l| l["event"] == "drain").await;
    provider
        .wait_line("deregistered", |l| l["event"] == "deregistered")
        .await;
    let status = provider.child.wait().await.unwrap();
    assert!(status.success(), "{status}");
    assert!(!registered(&addr, id).await);
    assert!(module_names(&addr).await.is_empty());
}
