//! Network faults: a partitioned minority cannot commit or serve linearizable reads while
//! the majority goes on, and linearizable reads never go back in time across a leader
//! change.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use orrery_proto::pb;
use orrery_test_harness::TestCluster;

const LINEARIZABLE: pb::ReadConsistency = pb::ReadConsistency::Linearizable;

/// An isolated leader is a minority: it commits nothing and serves no linearizable read;
/// the majority elects a new leader and goes on; once healed, the old leader converges.
/// Steps: start 3 nodes; reserve `base`; isolate the leader L with the transport filter;
/// reserve `minority` and read `base` linearizably through L only (1.5 s budget): both
/// fail; wait for a new leader among the other two; reserve `major0`..`major4` through
/// them; heal; wait until all three agree on one leader and L applied the new leader's
/// last index; check L serves `major*` and nobody has `minority`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_cannot_commit_and_converges_when_healed() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    cluster.client().reserve("base", "g", None).await.unwrap();
    let old_leader = cluster.leader().await;
    let majority: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != old_leader)
        .collect();
    cluster.filter().isolate(old_leader);

    let minority = cluster
        .client_of(old_leader)
        .with_call_timeout(Duration::from_millis(1500))
        .with_patience(Duration::ZERO);
    let write = minority.reserve("minority", "g", None).await;
    assert!(
        write.is_err(),
        "the isolated leader committed a write: {write:?}"
    );
    let read = minority.get("base", LINEARIZABLE).await;
    assert!(
        read.is_err(),
        "the isolated leader served a linearizable read: {read:?}"
    );

    let new_leader = cluster.leader_among(&majority).await;
    assert_ne!(new_leader, old_leader);
    let major = orrery_test_harness::ClusterClient::new(
        majority.iter().map(|id| cluster.addr(*id)).collect(),
    );
    for i in 0..5 {
        major
            .reserve(&format!("major{i}"), "g", None)
            .await
            .unwrap();
    }

    cluster.filter().unblock_all();
    cluster.leader().await;
    cluster.wait_caught_up(&cluster.ids()).await;
    let healed = cluster.client_of(old_leader);
    for i in 0..5 {
        healed
            .get(&format!("major{i}"), LINEARIZABLE)
            .await
            .unwrap();
    }
    for id in cluster.ids() {
        let missing = cluster
            .client_of(id)
            .get("minority", pb::ReadConsistency::Stale)
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "node {id}");
    }
}

/// An isolated follower serves stale reads and says how stale they are, refuses
/// linearizable ones, and catches up when healed; a slow link does not stop the cluster.
/// Steps: start 3 nodes; reserve `early`; delay the leader's messages to one follower by
/// 10 ms (below openraft's per-RPC timeout, the heartbeat interval) and reserve `slow`
/// (commits through the other follower); wait until F, the delayed follower, applied it;
/// isolate F; wait until F runs for election (so at least one election timeout passed
/// since it heard from the leader); read `slow` stale from F: found, `stale`, and
/// `stale_by_ms` >= the minimum election timeout; a linearizable read on F fails;
/// reserve `late` through the others; heal; wait until F applied the leader's last index;
/// read `late` linearizably from F.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_reports_staleness() {
    let cluster = TestCluster::start(&[1, 2, 3]).await;
    let client = cluster.client();
    client.reserve("early", "g", None).await.unwrap();
    let leader = cluster.leader().await;
    let ids = cluster.ids();
    let follower = *ids.iter().find(|id| **id != leader).unwrap();
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != follower).collect();

    cluster
        .filter()
        .delay(leader, follower, Duration::from_millis(10));
    client.reserve("slow", "g", None).await.unwrap();
    cluster.wait_caught_up(&[follower]).await;

    cluster.filter().isolate(follower);
    cluster
        .wait_for(
            &[follower],
            "the isolated follower to run for election",
            |m| (m[0].state == openraft::ServerState::Candidate).then_some(()),
        )
        .await;
    let on_follower = cluster
        .client_of(follower)
        .with_call_timeout(Duration::from_millis(1500))
        .with_patience(Duration::ZERO);
    let stale = on_follower
        .get("slow", pb::ReadConsistency::Stale)
        .await
        .unwrap();
    let header = stale.header.unwrap();
    assert!(header.stale);
    assert!(
        header.stale_by_ms >= orrery_server::RaftTuning::default().election_timeout_min_ms,
        "stale_by_ms {} too small",
        header.stale_by_ms
    );
    assert!(on_follower.get("early", LINEARIZABLE).await.is_err());

    let rest = orrery_test_harness::ClusterClient::new(
        others.iter().map(|id| cluster.addr(*id)).collect(),
    );
    rest.reserve("late", "g", None).await.unwrap();
    cluster.filter().unblock_all();
    cluster.filter().delay(leader, follower, Duration::ZERO);
    cluster.leader().await;
    cluster.wait_caught_up(&[follower]).await;
    cluster
        .client_of(follower)
        .get("late", LINEARIZABLE)
        .await
        .unwrap();
}

/// Linearizable reads never go back in time, across a leader change, from any node.
/// Steps: start 3 nodes; a writer reserves `mono.k0`, `mono.k1`, ... and publishes the
/// highest acknowledged revision; two readers list `mono` linearizably through clients
/// starting at different nodes and check each answer's revision is at least the highest
/// revision acknowledged before the read started and never below their previous answer,
/// and that the listing holds every name acknowledged before the read; meanwhile the
/// leader is killed and restarted; stop after the writer made 40 writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_never_go_back_in_time() {
    let mut cluster = TestCluster::start(&[1, 2, 3]).await;
    let acked_revision = Arc::new(AtomicU64::new(0));
    let acked_count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);

    let writer = {
        let client = cluster.client();
        let (acked_revision, acked_count) = (acked_revision.clone(), acked_count.clone());
        tokio::spawn(async move {
            for i in 0..40u64 {
                let r = client
                    .reserve(
                        &format!("mono.k{i}"),
                        "g",
                        Some(pb::RequestId {
                            client_id: "mono-writer".into(),
                            serial: i,
                        }),
                    )
                    .await
                    .unwrap();
                acked_revision.fetch_max(r.header.unwrap().revision, Ordering::SeqCst);
                acked_count.store(i + 1, Ordering::SeqCst);
                progress_tx.send_replace(i + 1);
            }
        })
    };
    let mut readers = Vec::new();
    for start in 0..2usize {
        let mut endpoints: Vec<String> = cluster.ids().iter().map(|id| cluster.addr(*id)).collect();
        endpoints.rotate_left(start + 1);
        let client = orrery_test_harness::ClusterClient::new(endpoints);
        let (acked_revision, acked_count, done) =
            (acked_revision.clone(), acked_count.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut previous = 0;
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let floor = acked_revision.load(Ordering::SeqCst);
                let count = acked_count.load(Ordering::SeqCst);
                let listing = client.list("mono", LINEARIZABLE).await.unwrap();
                let revision = listing.header.unwrap().revision;
                assert!(
                    revision >= floor,
                    "read revision {revision} < acknowledged {floor}"
                );
                assert!(
                    revision >= previous,
                    "read went back from {previous} to {revision}"
                );
                assert!(listing.namespaces.len() as u64 >= count);
                previous = revision;
                reads += 1;
            }
            reads
        }));
    }

    progress.wait_for(|n| *n >= 10).await.unwrap();
    let leader = cluster.leader().await;
    cluster.kill(leader).await;
    let rest = cluster.running_ids();
    cluster.leader_among(&rest).await;
    cluster.restart(leader).await;
    writer.await.unwrap();
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
}
