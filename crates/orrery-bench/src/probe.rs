//! The steps of a failover trial against an Orrery cluster: find the
//! leader, kill it and time the write outage, wait for a node to rejoin.

use crate::load::status_line;
use crate::payload::{self, OrrerySizing};
use crate::report::{self, Failover};
use crate::Output;
use orrery_proto::pb::{
    cluster_admin_client::ClusterAdminClient, Member, RequestId, ReserveNamespaceRequest,
    StatusRequest, StatusResponse,
};
use rand::Rng;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How long one `Status` call may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between two polls of the cluster.
const POLL: Duration = Duration::from_millis(50);

/// Admin clients by endpoint, connected lazily so that a node that is down
/// now can answer later.
#[derive(Default)]
pub struct Nodes {
    clients: HashMap<String, ClusterAdminClient<Channel>>,
}

impl Nodes {
    fn client(&mut self, endpoint: &str) -> Result<ClusterAdminClient<Channel>, String> {
        if let Some(client) = self.clients.get(endpoint) {
            return Ok(client.clone());
        }
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| format!("bad endpoint {endpoint:?}: {e}"))?
            .connect_timeout(STATUS_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let client = ClusterAdminClient::new(channel);
        self.clients.insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    async fn status(&mut self, endpoint: &str) -> Result<StatusResponse, String> {
        let mut client = self.client(endpoint)?;
        match tokio::time::timeout(STATUS_TIMEOUT, client.status(StatusRequest {})).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(format!("Status on {endpoint}: {}", status_line(&status))),
            Err(_) => Err(format!("Status on {endpoint}: no answer within 1 s")),
        }
    }

    /// The leader's own status, if `endpoints` (or the members they name)
    /// lead to a node that says it is the leader.
    pub async fn leader_status(
        &mut self,
        endpoints: &[String],
    ) -> Option<(String, StatusResponse)> {
        for endpoint in endpoints {
            let Ok(status) = self.status(endpoint).await else {
                continue;
            };
            if status.leader_id == 0 {
                continue;
            }
            if node_id(&status) == status.leader_id {
                return Some((endpoint.clone(), status));
            }
            let Some(addr) = member(&status, status.leader_id).map(|m| m.addr.clone()) else {
                continue;
            };
            if let Ok(leader) = self.status(&addr).await {
                if node_id(&leader) == status.leader_id && leader.leader_id == status.leader_id {
                    return Some((addr, leader));
                }
            }
        }
        None
    }
}

/// The id of the node that answered `status`, 0 if unknown.
pub fn node_id(status: &StatusResponse) -> u64 {
    status.header.as_ref().map_or(0, |h| h.node_id)
}

fn member(status: &StatusResponse, id: u64) -> Option<&Member> {
    status.members.iter().find(|m| m.id == id)
}

/// Polls until a node says it is the leader; returns its address and status.
pub async fn wait_for_leader(
    nodes: &mut Nodes,
    endpoints: &[String],
    timeout: Duration,
) -> Result<(String, StatusResponse), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = nodes.leader_status(endpoints).await {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no leader known to {} within {timeout:?}",
                endpoints.join(",")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a node says it is the leader; prints `ID ADDR`.
pub async fn leader(endpoints: &[String], timeout: Duration) -> Result<(), String> {
    let mut nodes = Nodes::default();
    let (addr, status) = wait_for_leader(&mut nodes, endpoints, timeout).await?;
    report::print_leader(node_id(&status), &addr);
    Ok(())
}

/// The options of `kill-leader`.
pub struct KillLeader {
    /// The cluster's endpoints.
    pub endpoints: Vec<String>,
    /// `ID=PID` for each node.
    pub pids: Vec<String>,
    /// Pause after a failed write.
    pub interval: Duration,
    /// Deadline of one write.
    pub attempt_timeout: Duration,
    /// Deadline of the whole outage.
    pub timeout: Duration,
    /// How to print the outcome.
    pub output: Output,
}

fn parse_pids(pids: &[String]) -> Result<HashMap<u64, u32>, String> {
    pids.iter()
        .map(|pair| {
            let (id, pid) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not ID=PID"))?;
            let id = id
                .trim()
                .parse()
                .map_err(|_| format!("bad node id in {pair:?}"))?;
            let pid = pid
                .trim()
                .parse()
                .map_err(|_| format!("bad pid in {pair:?}"))?;
            Ok((id, pid))
        })
        .collect()
}

/// Kills the leader with SIGKILL and times the first successful write
/// through a surviving node; prints the trial.
pub async fn kill_leader(options: KillLeader) -> Result<(), String> {
    let pids = parse_pids(&options.pids)?;
    let mut nodes = Nodes::default();
    let (leader_addr, status) =
        wait_for_leader(&mut nodes, &options.endpoints, Duration::from_secs(30)).await?;
    let leader_id = node_id(&status);
    let pid = *pids
        .get(&leader_id)
        .ok_or_else(|| format!("no pid given for the leader, node {leader_id}"))?;
    // The first other member that answers, voters first: writes go through it.
    let mut others: Vec<&Member> = status
        .members
        .iter()
        .filter(|m| m.id != leader_id)
        .collect();
    others.sort_by_key(|m| !m.voter);
    let mut via = None;
    for m in others {
        if nodes.status(&m.addr).await.is_ok() {
            via = Some(m.addr.clone());
            break;
        }
    }
    let via =
        via.ok_or_else(|| format!("no member other than the leader {leader_addr} answers"))?;
    let mut client = nodes.client(&via)?;

    let run: u32 = rand::rng().random();
    let mut rng = rand::rng();
    let sizing = OrrerySizing::for_value_size(256);

    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !killed.success() {
        return Err(format!("kill -KILL {pid} failed ({killed})"));
    }
    let t0 = Instant::now();
    let mut attempts = 0u64;
    let mut first_error = None;
    loop {
        attempts += 1;
        let name = payload::unique_name(0, attempts, run);
        let request = ReserveNamespaceRequest {
            request_id: Some(RequestId {
                client_id: format!("failover-{run:08x}"),
                serial: attempts,
            }),
            namespace: payload::padded_namespace(&name, sizing.namespace_len, &mut rng),
            group_id: payload::random_group(sizing.group_len, &mut rng),
        };
        let outcome =
            tokio::time::timeout(options.attempt_timeout, client.reserve_namespace(request)).await;
        match outcome {
            Ok(Ok(_)) => break,
            Ok(Err(status)) => {
                first_error.get_or_insert_with(|| status_line(&status));
            }
            Err(_) => {
                first_error.get_or_insert_with(|| {
                    format!("no answer within {:?}", options.attempt_timeout)
                });
            }
        }
        if t0.elapsed() >= options.timeout {
            return Err(format!(
                "no write succeeded through {via} within {:?} of killing node {leader_id} \
                 (first error: {})",
                options.timeout,
                first_error.unwrap_or_default()
            ));
        }
        tokio::time::sleep(options.interval).await;
    }
    let unavailable = t0.elapsed();
    let new_leader_id = nodes.status(&via).await.map_or(0, |s| s.leader_id);
    report::print_failover(
        &Failover {
            killed_id: leader_id,
            killed_pid: pid,
            via,
            unavailable_ms: unavailable.as_secs_f64() * 1000.0,
            attempts,
            new_leader_id,
            first_error,
        },
        options.output,
    )
}

/// Waits until the leader reports `node` reachable with every entry that
/// was committed when the wait began; prints the milliseconds it took.
pub async fn wait_member(endpoints: &[String], node: u64, timeout: Duration) -> Result<(), String> {
    let mut nodes = Nodes::default();
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let mut target = None;
    loop {
        if let Some((_, status)) = nodes.leader_status(endpoints).await {
            let target = *target.get_or_insert(status.commit_index);
            if let Some(m) = member(&status, node) {
                if m.reachable && m.matched_index >= target {
                    report::print_ms(t0.elapsed().as_secs_f64() * 1000.0);
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "node {node} did not rejoin within {timeout:?} (caught up to commit index {})",
                target.map_or("unknown".to_string(), |t| t.to_string())
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids() {
        let pids = parse_pids(&["1=100".into(), "2 = 200".into()]).unwrap();
        assert_eq!(pids[&1], 100);
        assert_eq!(pids[&2], 200);
        assert!(parse_pids(&["1:100".into()]).is_err());
    }
}
