//! The registry commands against fake nodes: `providers`, `modules`,
//! `exec` and `watch`, their outputs in both formats, what they send, and
//! how their failures end.

use std::time::Duration;

use orrery_cli::args::{Consistency, ExecArgs, ModulesCommand, ProvidersCommand, WatchArgs};
use orrery_cli::client::{Client, ClientConfig, RequestIds};
use orrery_cli::cmd;
use orrery_cli::errors::{CliError, EXIT_REFUSED};
use orrery_cli::output::OutputFormat;
use orrery_proto::pb;
use orrery_types::{wire, CValue};

use crate::support::{module, provider, Behaviour, FakeNode, Recorded, WatchScript};

fn client(endpoints: Vec<String>) -> Client {
    Client::with_request_ids(
        ClientConfig::new(endpoints),
        RequestIds::with_client_id("cli-test"),
    )
    .unwrap()
}

fn methods(node: &FakeNode) -> Vec<&'static str> {
    node.calls().iter().map(|c| c.method).collect()
}

async fn providers(node: &FakeNode, format: OutputFormat, command: ProvidersCommand) -> String {
    cmd::providers::run(&client(vec![node.endpoint()]), format, command)
        .await
        .unwrap()
}

async fn modules(node: &FakeNode, format: OutputFormat, command: ModulesCommand) -> String {
    cmd::modules::run(&client(vec![node.endpoint()]), format, command)
        .await
        .unwrap()
}

/// `providers list` is a table ordered by id and a JSON array of whole
/// connections.
/// Steps: list on a node answering connections 12 and 7; compare both
/// formats exactly.
#[tokio::test]
async fn providers_list_outputs() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let list = || ProvidersCommand::List {
        namespace: None,
        consistency: Consistency::Stale,
    };
    assert_eq!(
        providers(&node, OutputFormat::Table, list()).await,
        "\
ID  GENERATION  NAMESPACE  GROUP    ENDPOINT        STATE   MODULES  LEASE TTL  EXPIRES IN
7   2           acme       billing  10.0.0.7:9000   active  2        10s        7.5s
12  2           acme       billing  10.0.0.12:9000  active  2        10s        7.5s
"
    );
    let json: serde_json::Value =
        serde_json::from_str(&providers(&node, OutputFormat::Json, list()).await).unwrap();
    let ids: Vec<u64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["connection_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [7, 12]);
    assert_eq!(methods(&node), ["list_providers", "list_providers"]);
}

/// `providers show` prints every field of the connection, in both formats.
/// Steps: show connection 7; compare the table and the JSON exactly.
#[tokio::test]
async fn providers_show_outputs() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let show = || ProvidersCommand::Show {
        id: 7,
        consistency: Consistency::Linearizable,
    };
    assert_eq!(
        providers(&node, OutputFormat::Table, show()).await,
        "\
connection id        7
generation           2
namespace            acme
group                billing
endpoint             10.0.0.7:9000
state                active
modules              upper, fail
active modules       upper
lease ttl            10s
lease expires in     7.5s
registered revision  4
drain deadline       -
metadata             zone=eu-1
"
    );
    assert_eq!(
        providers(&node, OutputFormat::Json, show()).await,
        r#"{
  "connection_id": 7,
  "generation": 2,
  "namespace": "acme",
  "group_id": "billing",
  "executor_endpoint": "10.0.0.7:9000",
  "state": "active",
  "modules": [
    "upper",
    "fail"
  ],
  "active_modules": [
    "upper"
  ],
  "lease_ttl_ms": 10000,
  "lease_expires_in_ms": 7500,
  "metadata": {
    "zone": "eu-1"
  },
  "registered_revision": 4,
  "drain_deadline_unix_ms": null
}
"#
    );
}

/// `providers drain` sends the connection id, the deadline in milliseconds
/// and a request id, and prints the connection now draining.
/// Steps: drain 12 with `--deadline 45s` (as parsed); check the recorded
/// request and the state and deadline in the JSON answer.
#[tokio::test]
async fn drain_sends_the_connection_and_deadline() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let text = providers(
        &node,
        OutputFormat::Json,
        ProvidersCommand::Drain {
            id: 12,
            deadline: Duration::from_secs(45),
        },
    )
    .await;
    assert_eq!(
        node.requests(),
        [Recorded::Drain(pb::DrainProviderRequest {
            request_id: Some(pb::RequestId {
                client_id: "cli-test".into(),
                serial: 1,
            }),
            connection_id: 12,
            deadline_ms: 45_000,
        })]
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["connection_id"], 12);
    assert_eq!(json["state"], "draining");
    assert_eq!(json["drain_deadline_unix_ms"], 1_700_000_045_000u64);
}

/// `modules list` shows each module's types through `CType`'s display and
/// its serving count; JSON is an array ordered by name.
/// Steps: list; compare the table exactly and the JSON names and types.
#[tokio::test]
async fn modules_list_outputs() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let list = || ModulesCommand::List {
        namespace: Some("acme".into()),
        consistency: Consistency::Stale,
    };
    assert_eq!(
        modules(&node, OutputFormat::Table, list()).await,
        "\
MODULE      VERSION  INPUT                              OUTPUT                                                               SERVING
acme.fail   1.2.0    Product{text: String, times: Int}  Product{shout: String, parts: List<String>, note: Optional<String>}  2
acme.upper  1.2.0    Product{text: String, times: Int}  Product{shout: String, parts: List<String>, note: Optional<String>}  2
"
    );
    let json: serde_json::Value =
        serde_json::from_str(&modules(&node, OutputFormat::Json, list()).await).unwrap();
    assert_eq!(json[0]["qualified_name"], "acme.fail");
    assert_eq!(json[1]["qualified_name"], "acme.upper");
    assert_eq!(json[1]["input_type"], "Product{text: String, times: Int}");
}

/// `modules show` prints the types, tags, revisions and the serving
/// connections with endpoint, state and version; JSON carries the same.
/// Steps: show `acme.upper`; compare the table and the JSON exactly.
#[tokio::test]
async fn modules_show_outputs() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let show = || ModulesCommand::Show {
        name: "acme.upper".into(),
        consistency: Consistency::Linearizable,
    };
    assert_eq!(
        modules(&node, OutputFormat::Table, show()).await,
        "\
module             acme.upper
version            1.2.0
description        Shouts the text
input type         Product{text: String, times: Int}
output type        Product{shout: String, parts: List<String>, note: Optional<String>}
tags               team=text
canary             -
created revision   3
modified revision  9

CONNECTION  ENDPOINT        STATE     VERSION
7           10.0.0.7:9000   active    1.2.0
12          10.0.0.12:9000  draining  1.1.0
"
    );
    assert_eq!(
        modules(&node, OutputFormat::Json, show()).await,
        r#"{
  "qualified_name": "acme.upper",
  "namespace": "acme",
  "name": "upper",
  "version": "1.2.0",
  "description": "Shouts the text",
  "input_type": "Product{text: String, times: Int}",
  "output_type": "Product{shout: String, parts: List<String>, note: Optional<String>}",
  "serving": [
    {
      "connection_id": 7,
      "endpoint": "10.0.0.7:9000",
      "state": "active",
      "version": "1.2.0"
    },
    {
      "connection_id": 12,
      "endpoint": "10.0.0.12:9000",
      "state": "draining",
      "version": "1.1.0"
    }
  ],
  "canary": null,
  "tags": {
    "team": "text"
  },
  "created_revision": 3,
  "modified_revision": 9
}
"#
    );
    // The fixture is what the fake serves.
    assert_eq!(module("upper").serving.len(), 2);
}

fn exec_args(input: &str) -> ExecArgs {
    ExecArgs {
        module: "acme.upper".into(),
        input: input.into(),
        metadata: vec![("trace".into(), "t-1".into())],
    }
}

/// `exec` reads the module's input type, decodes `--input` against it
/// (fields in any order), sends the typed value with the metadata and the
/// budget, and prints the output as typed JSON against the output type.
/// Steps: exec with fields out of order; check the calls, the recorded
/// Execute request, the table output, then the `-o json` output.
#[tokio::test]
async fn exec_decodes_input_and_prints_typed_output() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let client = client(vec![node.endpoint()]);
    let text = cmd::exec::run(
        &client,
        OutputFormat::Table,
        exec_args(r#"{"times": 2, "text": "hi"}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        text,
        "{\"shout\":\"HI HI\",\"parts\":[\"HI\",\"HI\"],\"note\":null}\n"
    );
    assert_eq!(methods(&node), ["get_module", "execute"]);
    assert_eq!(
        node.requests(),
        [Recorded::Execute(pb::ExecuteModuleRequest {
            qualified_name: "acme.upper".into(),
            input: Some(wire::to_pb(&CValue::product([
                ("text", CValue::String("hi".into())),
                ("times", CValue::Int(2)),
            ]))),
            metadata: [("trace".to_string(), "t-1".to_string())].into(),
            timeout_ms: 5_000,
            execution_id: String::new(),
        })]
    );

    let json = cmd::exec::run(
        &client,
        OutputFormat::Json,
        exec_args(r#"{"text": "hi", "times": 2}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        json,
        r#"{
  "output": {
    "shout": "HI HI",
    "parts": [
      "HI",
      "HI"
    ],
    "note": null
  },
  "connection_id": 7,
  "version": "1.2.0",
  "execution_id": "ex-1"
}
"#
    );
}

fn event(revision: u64, kind: pb::ChangeKind, key: &str) -> pb::WatchResponse {
    use pb::watch_event::Object;
    let object = match kind {
        pb::ChangeKind::ModuleAdded => Some(Object::Module(module("upper"))),
        pb::ChangeKind::ConnectionUpdated => Some(Object::Provider(provider(7))),
        _ => None,
    };
    pb::WatchResponse {
        body: Some(pb::watch_response::Body::Event(pb::WatchEvent {
            revision,
            kind: kind as i32,
            key: key.into(),
            object,
        })),
    }
}

fn progress(revision: u64) -> pb::WatchResponse {
    pb::WatchResponse {
        body: Some(pb::watch_response::Body::Progress(pb::WatchProgress {
            revision,
        })),
    }
}

fn watch_from(node: &FakeNode) -> Vec<u64> {
    node.requests()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Watch(w) => Some(w.from_revision),
            _ => None,
        })
        .collect()
}

async fn watch(client: &Client, format: OutputFormat, from: u64) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let args = WatchArgs {
        from,
        namespace: vec!["acme".into()],
    };
    let result = cmd::watch::run(client, format, args, &mut out, std::future::pending()).await;
    (result, String::from_utf8(out).unwrap())
}

/// Events print in order, progress is not printed, and when the first node
/// drops the stream the watch resumes on the next endpoint from the last
/// revision seen + 1; the server ending the stream ends the watch with Ok.
/// Steps: node A streams revisions 5 and 6 and a progress, then breaks with
/// UNAVAILABLE; node B streams 7 then ends; watch from 5 with endpoints
/// [A, B]; compare the lines and the revision each node was asked for.
#[tokio::test]
async fn watch_resumes_on_the_next_endpoint() {
    let first = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    let second = FakeNode::start(Behaviour::Answer { node_id: 2 }).await;
    first.set_watch(WatchScript {
        messages: vec![
            event(5, pb::ChangeKind::ModuleAdded, "acme.upper"),
            progress(5),
            event(6, pb::ChangeKind::ConnectionUpdated, "7"),
        ],
        then_break: true,
    });
    second.set_watch(WatchScript {
        messages: vec![event(7, pb::ChangeKind::NamespaceClaimed, "acme")],
        then_break: false,
    });
    let client = client(vec![first.endpoint(), second.endpoint()]);

    let (result, out) = watch(&client, OutputFormat::Table, 5).await;

    result.unwrap();
    assert_eq!(
        out,
        "5 MODULE_ADDED acme.upper\n6 CONNECTION_UPDATED 7\n7 NAMESPACE_CLAIMED acme\n"
    );
    assert_eq!(watch_from(&first), [5]);
    assert_eq!(watch_from(&second), [7]);
    assert_eq!(client.current_endpoint(), second.endpoint());
}

/// `-o json` prints one compact object per event with the object summarised.
/// Steps: a node streams a module and a connection event then ends; compare
/// the lines exactly.
#[tokio::test]
async fn watch_json_lines() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    node.set_watch(WatchScript {
        messages: vec![
            event(5, pb::ChangeKind::ModuleAdded, "acme.upper"),
            event(6, pb::ChangeKind::ConnectionUpdated, "7"),
            event(6, pb::ChangeKind::NamespaceReleased, "acme.old"),
        ],
        then_break: false,
    });
    let (result, out) = watch(&client(vec![node.endpoint()]), OutputFormat::Json, 0).await;
    result.unwrap();
    assert_eq!(
        out,
        r#"{"revision":5,"kind":"MODULE_ADDED","key":"acme.upper","object":{"type":"module","qualified_name":"acme.upper","version":"1.2.0","serving":2}}
{"revision":6,"kind":"CONNECTION_UPDATED","key":"7","object":{"type":"provider","connection_id":7,"namespace":"acme","state":"active","endpoint":"10.0.0.7:9000"}}
{"revision":6,"kind":"NAMESPACE_RELEASED","key":"acme.old","object":null}
"#
    );
}

/// A compacted start ends the watch with an error naming the oldest kept
/// revision, exit code 1.
/// Steps: a node streams `compacted`; check that nothing was printed, the
/// error's line and its exit code.
#[tokio::test]
async fn watch_compacted_fails() {
    let node = FakeNode::start(Behaviour::Answer { node_id: 1 }).await;
    node.set_watch(WatchScript {
        messages: vec![pb::WatchResponse {
            body: Some(pb::watch_response::Body::Compacted(pb::WatchCompacted {
                oldest_revision: 40,
                current_revision: 90,
            })),
        }],
        then_break: false,
    });
    let (result, out) = watch(&client(vec![node.endpoint()]), OutputFormat::Table, 3).await;
    let error = result.unwrap_err();
    assert!(out.is_empty(), "{out}");
    assert_eq!(error.exit_code(), EXIT_REFUSED);
    assert_eq!(
        error.report_line(),
        "error: watch from revision 3 is compacted: the oldest kept revision is 40 \
         (current 90); list the current state and watch from its revision + 1"
    );
}

/// The stop signal (Ctrl-C) ends a watch with Ok even while it waits.
/// Steps: a node that never answers; stop after 200 ms; the watch returns Ok.
#[tokio::test]
async fn watch_stops_on_signal() {
    let node = FakeNode::start(Behaviour::Hang).await;
    let client = client(vec![node.endpoint()]);
    let mut out = Vec::new();
    let args = WatchArgs {
        from: 0,
        namespace: Vec::new(),
    };
    let stop = tokio::time::sleep(Duration::from_millis(200));
    cmd::watch::run(&client, OutputFormat::Table, args, &mut out, stop)
        .await
        .unwrap();
    assert!(out.is_empty());
}
