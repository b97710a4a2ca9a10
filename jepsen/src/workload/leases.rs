//! The lease workload: each client registers a provider with a short lease
//! (`jpv.l<client>n<n>`), keeps it alive by heartbeating on a control stream
//! (re-attaching to another node when a stream breaks) for a random
//! lifetime, then stops it without deregistering: the cluster must expire it,
//! and not before its lease allows. An observer lists the modules four times a
//! second so that every removal is seen.

use std::time::Duration;

use orrery_proto::pb;
use orrery_proto::pb::control_message::Body as Message;
use orrery_proto::pb::control_reply::Body as Reply;
use orrery_proto::pb::provider_service_client::ProviderServiceClient;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::providers::{list_modules, send_write};
use super::{join_clients, ClientContext, Patience, Recorder};
use crate::cluster::Directory;
use crate::history::{Answer, Call, Completion, Heartbeat, Op, MODULES_KEY};
use crate::runclock::RunClock;

/// The lease every leased provider asks for.
pub const TTL: Duration = Duration::from_secs(6);
/// Process numbers of lease clients start here (provider clients use 0..).
const FIRST_PROCESS: u32 = 1_000;
/// How often the observer lists the modules.
const OBSERVE_EVERY: Duration = Duration::from_millis(250);

/// How the workload runs.
#[derive(Clone, Debug)]
pub struct LeasesConfig {
    /// Concurrent leased providers (half of `--concurrency`: 4).
    pub concurrency: u32,
    /// How long registrations and listings are tried (3 s a try, 8 s in
    /// all).
    pub patience: Patience,
    /// Seeds the clients' choices (`--seed`, default 1).
    pub seed: u64,
}

/// Runs the clients and the observer until `until`; every provider is
/// stopped by then.
pub async fn run(
    nodes: Directory,
    config: LeasesConfig,
    clock: RunClock,
    until: Instant,
    recorder: Recorder,
) -> anyhow::Result<()> {
    let context = |process: u32| {
        ClientContext::new(process, nodes.clone(), config.seed, clock, config.patience)
    };
    let mut tasks = Vec::new();
    for i in 0..config.concurrency {
        let process = FIRST_PROCESS + i;
        let client = LeaseClient {
            context: context(process),
            client_id: format!("jepsen-lease-{}-p{process}", config.seed),
            serial: 0,
        };
        tasks.push(tokio::spawn(client.run(until, recorder.clone())));
    }
    let mut observer = context(FIRST_PROCESS + config.concurrency);
    let observer_recorder = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while Instant::now() < until {
            let send = |channel| list_modules(channel, pb::ReadConsistency::Linearizable);
            let op = observer
                .perform(MODULES_KEY.to_string(), Call::ListModules, 0, send, |_| {
                    None
                })
                .await;
            observer_recorder.push(op);
            sleep(OBSERVE_EVERY).await;
        }
    }));
    join_clients(tasks).await;
    Ok(())
}

/// One client: one leased provider at a time.
struct LeaseClient {
    context: ClientContext,
    client_id: String,
    serial: u64,
}

impl LeaseClient {
    async fn run(mut self, until: Instant, recorder: Recorder) {
        let mut created = 0u32;
        let ttl_ms = TTL.as_millis() as u64;
        while Instant::now() + Duration::from_secs(1) < until {
            created += 1;
            let key = format!("{MODULES_KEY}.l{}n{created}", self.context.process);
            self.serial += 1;
            let request_id = pb::RequestId {
                client_id: self.client_id.clone(),
                serial: self.serial,
            };
            let send = |channel| {
                let (key, request_id) = (key.clone(), request_id.clone());
                async move { send_write(channel, key, Call::Register, request_id, ttl_ms).await }
            };
            let register = self
                .context
                .perform(key.clone(), Call::Register, self.serial, send, |_| None)
                .await;
            let registered = match register.answer() {
                Some(Answer::Registered {
                    connection_id,
                    generation,
                }) => Some((*connection_id, *generation)),
                _ => None,
            };
            recorder.push(register);
            let Some((connection_id, generation)) = registered else {
                continue;
            };
            let lifetime = Duration::from_millis(self.context.rng.random_range(2_000..12_000));
            let stop = (Instant::now() + lifetime).min(until);
            let call = Call::Lease {
                connection_id,
                generation,
                ttl_ms,
            };
            let invoke_ns = self.context.clock.now_ns();
            let beats = self.hold(connection_id, generation, stop).await;
            recorder.push(Op {
                index: 0,
                process: self.context.process,
                key,
                call,
                serial: 0,
                invoke_ns,
                complete_ns: self.context.clock.now_ns(),
                completion: Completion::Ok {
                    answer: Answer::Heartbeats { beats },
                },
                node: 0,
                attempts: 1,
            });
        }
    }

    /// Heartbeats the lease until `stop`, moving to the next node whenever a
    /// control stream breaks, an acknowledgement is late or says the node's
    /// last renewal did not reach the leader.
    async fn hold(&mut self, connection_id: u64, generation: u64, stop: Instant) -> Vec<Heartbeat> {
        let interval = TTL / 5;
        let mut beats = Vec::new();
        let mut at = self.context.rng.random_range(0..16usize);
        let mut sequence = 0;
        while Instant::now() < stop {
            let ids = self.context.nodes.ids();
            let node = ids[at % ids.len()];
            at += 1;
            let Some(channel) = self.context.nodes.channel(node) else {
                continue;
            };
            let mut client = ProviderServiceClient::new(channel);
            let (tx, rx) = mpsc::channel(4);
            let attach = Message::Attach(pb::Attach {
                connection_id,
                generation,
            });
            if tx
                .send(pb::ControlMessage { body: Some(attach) })
                .await
                .is_err()
            {
                continue;
            }
            let stream = client.control_plane(tokio_stream::wrappers::ReceiverStream::new(rx));
            let mut replies = match timeout(interval, stream).await {
                Ok(Ok(replies)) => replies.into_inner(),
                _ => {
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match timeout(interval, replies.message()).await {
                Ok(Ok(Some(pb::ControlReply {
                    body: Some(Reply::Attached(_)),
                }))) => {}
                _ => continue,
            }
            let mut next = Instant::now();
            loop {
                if next >= stop {
                    return beats;
                }
                sleep_until(next).await;
                next += interval;
                sequence += 1;
                let heartbeat = Message::Heartbeat(pb::Heartbeat {
                    sequence,
                    in_flight: 0,
                });
                let sent_ns = self.context.clock.now_ns();
                if tx
                    .send(pb::ControlMessage {
                        body: Some(heartbeat),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                let ack = timeout(interval, async {
                    loop {
                        match replies.message().await {
                            Ok(Some(pb::ControlReply {
                                body: Some(Reply::HeartbeatAck(ack)),
                            })) if ack.sequence == sequence => return Some(ack.renewed),
                            Ok(Some(_)) => {}
                            _ => return None,
                        }
                    }
                })
                .await;
                match ack {
                    Ok(Some(renewed)) => {
                        beats.push(Heartbeat {
                            node,
                            sent_ns,
                            acked_ns: Some(self.context.clock.now_ns()),
                            renewed,
                        });
                        // The node cannot reach the leader: try another.
                        if !renewed {
                            break;
                        }
                    }
                    _ => {
                        beats.push(Heartbeat {
                            node,
                            sent_ns,
                            acked_ns: None,
                            renewed: false,
                        });
                        break;
                    }
                }
            }
        }
        beats
    }
}
