//! The provider side of the protocol, as the benchmarks need it: register a
//! connection through a node (up to ACTIVE) and keep its control stream
//! attached and heartbeating, tallying what the node answers.

use crate::executor;
use crate::load::{deadline, status_line};
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use orrery_proto::pb::{
    control_message, control_reply, Attach, ControlMessage, Heartbeat, RegisterEvent,
    RegisterRequest, RegisterStage, RequestId,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

/// A connection the cluster registered.
#[derive(Clone, Copy, Debug)]
pub struct Registered {
    /// Its connection id.
    pub connection_id: u64,
    /// Its generation, quoted on attach.
    pub generation: u64,
}

/// Registers `namespace` (a lone connection, no group) serving
/// [`executor::MODULE`] on `executor_endpoint`, and waits for ACTIVE.
/// `lease_ttl`: zero takes the cluster default.
pub async fn register(
    client: &mut ProviderServiceClient<Channel>,
    request_id: RequestId,
    namespace: &str,
    executor_endpoint: &str,
    lease_ttl: Duration,
    timeout: Duration,
) -> Result<Registered, String> {
    let request = RegisterRequest {
        request_id: Some(request_id),
        namespace: namespace.to_string(),
        executor_endpoint: executor_endpoint.to_string(),
        modules: vec![executor::declaration()],
        lease_ttl_ms: u64::try_from(lease_ttl.as_millis()).unwrap_or(u64::MAX),
        ..Default::default()
    };
    deadline(timeout, async {
        let mut events = client
            .register(request)
            .await
            .map_err(|s| format!("Register({namespace}): {}", status_line(&s)))?
            .into_inner();
        let mut committed = None;
        while let Some(event) = events
            .message()
            .await
            .map_err(|s| format!("Register({namespace}) events: {}", status_line(&s)))?
        {
            match event.stage() {
                RegisterStage::Committed => {
                    committed = Some(Registered {
                        connection_id: event.connection_id,
                        generation: event.generation,
                    });
                }
                RegisterStage::Active => {
                    return committed
                        .ok_or_else(|| format!("Register({namespace}): ACTIVE without COMMITTED"));
                }
                RegisterStage::Failed => return Err(failure(namespace, &event)),
                _ => {}
            }
        }
        Err(format!(
            "Register({namespace}): the events ended before ACTIVE"
        ))
    })
    .await
}

fn failure(namespace: &str, event: &RegisterEvent) -> String {
    let detail = event.error.as_ref().map_or(String::new(), |e| {
        format!(" ({:?}: {})", e.code(), e.message)
    });
    format!("Register({namespace}) FAILED: {}{detail}", event.message)
}

/// What the control streams saw, summed over all of them.
#[derive(Default, Debug)]
pub struct Tally {
    /// Streams attached.
    pub attached: AtomicU64,
    /// Heartbeats sent.
    pub sent: AtomicU64,
    /// Heartbeats acknowledged.
    pub acked: AtomicU64,
    /// Acknowledgements with `renewed = false`.
    pub not_renewed: AtomicU64,
    /// Drain requests received.
    pub drains: AtomicU64,
    /// Streams the node ended (or that broke) before they were stopped,
    /// attach refusals included.
    pub ended: AtomicU64,
}

impl Tally {
    /// The value of one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Attaches a control stream to `connection` and heartbeats every
/// `interval`, the first heartbeat `first_after` the attach, until `stop`
/// turns true (or its sender goes). Every event is counted in `tally`; the
/// first problem is returned as an error.
pub async fn control(
    mut client: ProviderServiceClient<Channel>,
    connection: Registered,
    interval: Duration,
    first_after: Duration,
    mut stop: watch::Receiver<bool>,
    tally: &Tally,
) -> Result<(), String> {
    let outcome = async {
        let (tx, rx) = mpsc::channel(4);
        let attach = control_message::Body::Attach(Attach {
            connection_id: connection.connection_id,
            generation: connection.generation,
        });
        send(&tx, attach).await?;
        let mut replies = client
            .control_plane(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| format!("ControlPlane: {}", status_line(&s)))?
            .into_inner();
        match replies.message().await {
            Ok(Some(reply)) if matches!(reply.body, Some(control_reply::Body::Attached(_))) => {
                Tally::bump(&tally.attached);
            }
            Ok(other) => return Err(format!("attach answered {other:?}")),
            Err(s) => return Err(format!("attach: {}", status_line(&s))),
        }
        let mut ticks = tokio::time::interval_at(Instant::now() + first_after, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0;
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                _ = ticks.tick() => {
                    sequence += 1;
                    send(&tx, control_message::Body::Heartbeat(Heartbeat {
                        sequence,
                        in_flight: 0,
                    }))
                    .await?;
                    Tally::bump(&tally.sent);
                }
                reply = replies.message() => match reply {
                    Ok(Some(reply)) => match reply.body {
                        Some(control_reply::Body::HeartbeatAck(ack)) => {
                            Tally::bump(&tally.acked);
                            if !ack.renewed {
                                Tally::bump(&tally.not_renewed);
                            }
                        }
                        Some(control_reply::Body::Drain(_)) => Tally::bump(&tally.drains),
                        _ => {}
                    },
                    Ok(None) => return Err("the node ended the control stream".to_string()),
                    Err(s) => return Err(format!("control stream: {}", status_line(&s))),
                },
            }
        }
    }
    .await;
    if outcome.is_err() {
        Tally::bump(&tally.ended);
    }
    outcome
}

/// Returns once `stop` turns true or its sender goes.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` answers is not `Send`: dropped right here.
    drop(stop.wait_for(|stop| *stop).await);
}

async fn send(
    tx: &mpsc::Sender<ControlMessage>,
    body: control_message::Body,
) -> Result<(), String> {
    tx.send(ControlMessage { body: Some(body) })
        .await
        .map_err(|_| "the control stream closed".to_string())
}
