//! Building blocks of answers: the [`pb::ResponseHeader`] every answer carries, the member
//! list of `Status` and membership changes, and namespace records as [`pb::NamespaceInfo`].

use std::time::Duration;

use openraft::ServerState;
use orrery_proto::pb;
use orrery_store::NamespaceOwner;
use orrery_store::NamespaceRecord;

use crate::errors::ApiError;
use crate::node::NodeCore;

impl NodeCore {
    /// The header of an answer made now; `revision` overrides the replica's current one
    /// (a write answers with the revision its entry produced).
    pub(crate) fn header(
        &self,
        revision: Option<u64>,
        stale: bool,
    ) -> Result<pb::ResponseHeader, ApiError> {
        let metrics = self.metrics();
        let revision = match revision {
            Some(r) => r,
            None => self.reader.revision().map_err(internal)?,
        };
        Ok(pb::ResponseHeader {
            node_id: self.id,
            revision,
            raft_term: metrics.current_term,
            applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            stale,
            stale_by_ms: if stale {
                self.millis_since_leader_contact()
            } else {
                0
            },
            leader_id: metrics.current_leader.unwrap_or(0),
        })
    }

    /// Every member, voters and learners, ordered by id, as this node sees them.
    pub(crate) fn members(&self) -> Vec<pb::Member> {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let recent = Duration::from_millis(self.tuning.election_timeout_max_ms * 2);
        let mut members: Vec<pb::Member> = membership
            .nodes()
            .map(|(id, node)| {
                let voter = voters.contains(id);
                let role = if *id == self.id {
                    match metrics.state {
                        ServerState::Leader => pb::NodeRole::Leader,
                        ServerState::Candidate => pb::NodeRole::Candidate,
                        ServerState::Learner => pb::NodeRole::Learner,
                        ServerState::Follower if voter => pb::NodeRole::Follower,
                        ServerState::Follower => pb::NodeRole::Learner,
                        ServerState::Shutdown => pb::NodeRole::Unspecified,
                    }
                } else if metrics.current_leader == Some(*id) {
                    pb::NodeRole::Leader
                } else if voter {
                    pb::NodeRole::Follower
                } else {
                    pb::NodeRole::Learner
                };
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map(|l| l.index);
                let (last_applied_index, matched_index) = if *id == self.id {
                    let applied = metrics.last_applied.map(|l| l.index).unwrap_or(0);
                    (applied, metrics.last_log_index.unwrap_or(0))
                } else {
                    (0, matched.unwrap_or(0))
                };
                let reachable = *id == self.id
                    || self
                        .peers
                        .last_answer(*id)
                        .is_some_and(|t| t.elapsed() < recent)
                    || (metrics.current_leader == Some(*id)
                        && self.millis_since_leader_contact() < recent.as_millis() as u64);
                pb::Member {
                    id: *id,
                    addr: node.addr.clone(),
                    role: role as i32,
                    voter,
                    last_applied_index,
                    matched_index,
                    reachable,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members
    }
}

/// A namespace record as the protocol shows it.
pub(crate) fn namespace_info(name: &str, record: &NamespaceRecord) -> pb::NamespaceInfo {
    let (owner_group, owner_connection_id) = match &record.owner {
        NamespaceOwner::Group(group) => (group.clone(), 0),
        NamespaceOwner::Connection(id) => (String::new(), *id),
    };
    pb::NamespaceInfo {
        namespace: name.to_string(),
        owner_group,
        owner_connection_id,
        reserved: record.operator_reserved,
        epoch: record.reserved_at,
        modified_revision: record.reserved_at,
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}
