//! The client against real tonic servers: endpoint failover, leader hints,
//! request ids across retries, refusals and time budgets.

use std::time::{Duration, Instant};

use orrery_cli::args::{ClusterCommand, Consistency, NamespacesCommand};
use orrery_cli::client::{Client, ClientConfig, RequestIds};
use orrery_cli::cmd;
use orrery_cli::errors::{ClientError, ExitCode, EXIT_REFUSED, EXIT_UNAVAILABLE};
use orrery_cli::output::OutputFormat;
use orrery_proto::pb;

use crate::support::{closed_endpoint, Behaviour, FakeNode};

fn client(endpoints: Vec<String>, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        timeout,
        ..ClientConfig::new(endpoints)
    })
    .unwrap()
}

fn methods(node: &FakeNode) -> Vec<&'static str> {
    node.calls().iter().map(|c| c.method).collect()
}

/// A node that cannot serve points at the leader, and the client follows
/// the hint even though the leader was not among its endpoints.
/// Steps: start node 2 answering; start node 1 refusing with UNAVAILABLE and
/// a hint naming node 2; run `cluster status -o json` with only node 1 as
/// endpoint; check that node 2 answered, each node got one call, and the
/// client now prefers node 2.
#[tokio::test]
async fn follows_the_leader_hint_to_an_unlisted_node() {
    let leader = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    let follower = FakeNode::start(Behaviour::NotLeader {
        leader: Some((2, leader.endpoint())),
    })
    .await;
    let client = client(vec![follower.endpoint()], Duration::from_secs(5));

    let text = cmd::cluster::run(&client, OutputFormat::Json, ClusterCommand::Status)
        .await
        .unwrap();

    assert!(text.contains("\"answered_by\": 2"), "{text}");
    assert_eq!(methods(&follower), ["status"]);
    assert_eq!(methods(&leader), ["status"]);
    assert_eq!(client.current_endpoint(), leader.endpoint());
}

/// An endpoint nobody listens on is skipped for the next one.
/// Steps: endpoints = [a closed port, an answering node]; reserve a
/// namespace; check the table output and that the node got the call.
#[tokio::test]
async fn skips_an_endpoint_that_refuses_connections() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let client = client(
        vec![closed_endpoint().await, node.endpoint()],
        Duration::from_secs(5),
    );

    let text = cmd::namespaces::run(
        &client,
        OutputFormat::Table,
        NamespacesCommand::Reserve {
            name: "acme".into(),
            group: "billing".into(),
        },
    )
    .await
    .unwrap();

    assert_eq!(text, "reserved namespace acme for group billing\n");
    assert_eq!(methods(&node), ["reserve_namespace"]);
    assert_eq!(client.current_endpoint(), node.endpoint());
}

/// A write retried on another node carries the same request id; the next
/// write gets the next serial and goes straight to the node that answered.
/// Steps: node 1 refuses with a hint to node 2; reserve (fails over), then
/// release; compare the request ids each node saw.
#[tokio::test]
async fn retries_carry_the_same_request_id() {
    let leader = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    let follower = FakeNode::start(Behaviour::NotLeader {
        leader: Some((2, leader.endpoint())),
    })
    .await;
    let client = Client::with_request_ids(
        ClientConfig::new(vec![follower.endpoint()]),
        RequestIds::with_client_id("cli-test"),
    )
    .unwrap();

    cmd::namespaces::run(
        &client,
        OutputFormat::Json,
        NamespacesCommand::Reserve {
            name: "acme".into(),
            group: "billing".into(),
        },
    )
    .await
    .unwrap();
    cmd::namespaces::run(
        &client,
        OutputFormat::Json,
        NamespacesCommand::Release {
            name: "acme".into(),
        },
    )
    .await
    .unwrap();

    let id = |serial| {
        Some(pb::RequestId {
            client_id: "cli-test".into(),
            serial,
        })
    };
    let seen = |node: &FakeNode| -> Vec<_> {
        node.calls()
            .into_iter()
            .map(|c| (c.method, c.request_id))
            .collect()
    };
    assert_eq!(seen(&follower), [("reserve_namespace", id(1))]);
    assert_eq!(
        seen(&leader),
        [("reserve_namespace", id(1)), ("release_namespace", id(2))]
    );
}

/// A typed refusal is the answer: no other endpoint is tried, and it maps
/// to exit code 1.
/// Steps: endpoints = [refusing node, answering node]; get a namespace;
/// check the error, its code name and exit code, and that the second node
/// got nothing.
#[tokio::test]
async fn a_refusal_is_the_answer() {
    let refusing = FakeNode::start(Behaviour::Refuse {
        code: pb::ErrorCode::NotFound,
        grpc: tonic::Code::NotFound,
        message: "namespace \"nope\" does not exist".into(),
    })
    .await;
    let other = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    let client = client(
        vec![refusing.endpoint(), other.endpoint()],
        Duration::from_secs(5),
    );

    let error = cmd::namespaces::run(
        &client,
        OutputFormat::Table,
        NamespacesCommand::Get {
            name: "nope".into(),
            consistency: Consistency::Linearizable,
        },
    )
    .await
    .unwrap_err();

    let ClientError::Api(api) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(api.code, pb::ErrorCode::NotFound);
    assert_eq!(error.code_name().as_deref(), Some("NOT_FOUND"));
    assert_eq!(error.exit_code(), EXIT_REFUSED);
    assert_eq!(methods(&refusing), ["get_namespace"]);
    assert!(other.calls().is_empty());
}

/// When no node can answer, the client keeps trying in rounds until the
/// budget is spent, then reports the cluster unavailable (exit code 3).
/// Steps: endpoints = [a node without quorum and no hint, a closed port];
/// budget 400 ms; run status; check the error, the elapsed time and that
/// the node was asked more than once.
#[tokio::test]
async fn gives_up_when_no_node_answers() {
    let no_quorum = FakeNode::start(Behaviour::NotLeader { leader: None }).await;
    let closed = closed_endpoint().await;
    let client = client(
        vec![no_quorum.endpoint(), closed.clone()],
        Duration::from_millis(400),
    );

    let started = Instant::now();
    let error = cmd::cluster::run(&client, OutputFormat::Table, ClusterCommand::Status)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    let ClientError::Unavailable { attempts, last, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(*attempts >= 4, "{attempts} attempts");
    assert!(last.starts_with(&closed), "{last}");
    assert_eq!(error.exit_code(), EXIT_UNAVAILABLE);
    assert!(no_quorum.calls().len() >= 2);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

/// Two nodes that name each other as leader do not make the client spin:
/// each round tries each node once, with pauses between rounds.
/// Steps: start A and B; make A hint B and B hint A; budget 500 ms; run
/// status; check the outcome and that the number of calls stays small.
#[tokio::test]
async fn hints_in_a_circle_do_not_spin() {
    let a = FakeNode::start(Behaviour::NotLeader { leader: None }).await;
    let b = FakeNode::start(Behaviour::NotLeader { leader: None }).await;
    a.set_behaviour(Behaviour::NotLeader {
        leader: Some((2, b.endpoint())),
    });
    b.set_behaviour(Behaviour::NotLeader {
        leader: Some((1, a.endpoint())),
    });
    let client = client(vec![a.endpoint()], Duration::from_millis(500));

    let error = cmd::cluster::run(&client, OutputFormat::Table, ClusterCommand::Status)
        .await
        .unwrap_err();

    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(error.code_name().as_deref(), Some("NO_QUORUM"));
    let (calls_a, calls_b) = (a.calls().len(), b.calls().len());
    assert!(calls_a >= 2 && calls_b >= 2, "{calls_a} + {calls_b} calls");
    assert!(calls_a + calls_b <= 20, "{calls_a} + {calls_b} calls");
}

/// A node that takes the call and never answers costs the budget, not more.
/// Steps: a hanging node; budget 300 ms; run status; check the error and
/// the elapsed time.
#[tokio::test]
async fn a_hanging_node_costs_the_budget() {
    let hanging = FakeNode::start(Behaviour::Hang).await;
    let client = client(vec![hanging.endpoint()], Duration::from_millis(300));

    let started = Instant::now();
    let error = cmd::cluster::run(&client, OutputFormat::Table, ClusterCommand::Status)
        .await
        .unwrap_err();

    let ClientError::Unavailable { last, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(last.contains("no answer in time"), "{last}");
    assert_eq!(error.exit_code(), EXIT_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A node that gives up on a request before the budget is spent (untyped
/// CANCELLED) is skipped for the next endpoint.
/// Steps: endpoints = [a node answering CANCELLED, an answering node]; run
/// status; check that the second node answered.
#[tokio::test]
async fn a_node_that_gives_up_early_is_skipped() {
    let giving_up = FakeNode::start(Behaviour::GiveUp).await;
    let node = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    let client = client(
        vec![giving_up.endpoint(), node.endpoint()],
        Duration::from_secs(5),
    );

    let text = cmd::cluster::run(&client, OutputFormat::Json, ClusterCommand::Status)
        .await
        .unwrap();

    assert!(text.contains("\"answered_by\": 2"), "{text}");
    assert_eq!(methods(&giving_up), ["status"]);
    assert_eq!(methods(&node), ["status"]);
}

/// Every cluster and namespace command reaches its RPC and renders.
/// Steps: run each command against an answering node in JSON and table
/// form; check the RPC names the node saw.
#[tokio::test]
async fn every_command_reaches_its_rpc() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let client = client(vec![node.endpoint()], Duration::from_secs(5));
    let cluster = [
        ClusterCommand::Status,
        ClusterCommand::AddLearner {
            id: 4,
            addr: "node-4:7400".into(),
        },
        ClusterCommand::Promote { id: 4 },
        ClusterCommand::Remove { id: 4 },
        ClusterCommand::TransferLeader { id: 1 },
        ClusterCommand::Snapshot,
    ];
    for command in cluster {
        for format in [OutputFormat::Table, OutputFormat::Json] {
            cmd::cluster::run(&client, format, command.clone())
                .await
                .unwrap();
        }
    }
    let namespaces = [
        NamespacesCommand::Reserve {
            name: "acme".into(),
            group: "billing".into(),
        },
        NamespacesCommand::Release {
            name: "acme".into(),
        },
        NamespacesCommand::List {
            prefix: Some("acme".into()),
            consistency: Consistency::Stale,
        },
        NamespacesCommand::Get {
            name: "acme".into(),
            consistency: Consistency::Linearizable,
        },
    ];
    for command in namespaces {
        for format in [OutputFormat::Table, OutputFormat::Json] {
            cmd::namespaces::run(&client, format, command.clone())
                .await
                .unwrap();
        }
    }
    let mut seen = methods(&node);
    seen.dedup();
    assert_eq!(
        seen,
        [
            "status",
            "add_learner",
            "promote",
            "remove_node",
            "transfer_leader",
            "snapshot",
            "reserve_namespace",
            "release_namespace",
            "list_namespaces",
            "get_namespace"
        ]
    );
}
