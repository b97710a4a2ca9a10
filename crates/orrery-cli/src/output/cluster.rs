//! Views of the `ClusterAdmin` membership answers: status, membership
//! changes, leadership transfer and snapshots.

use orrery_proto::pb;
use serde::Serialize;

use super::{cell, key_values, known, table, yes_no, Render};

/// `orrery cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// The cluster's id.
    pub cluster_id: String,
    /// The leader's id; `null` when none is known.
    pub leader_id: Option<u64>,
    /// The answering node's term.
    pub term: u64,
    /// The highest committed log index the answering node knows of.
    pub commit_index: u64,
    /// The id of the node that answered.
    pub answered_by: u64,
    /// Every member, ordered by id.
    pub members: Vec<MemberView>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// The node id.
    pub id: u64,
    /// Its address, `host:port`.
    pub addr: String,
    /// `leader`, `follower`, `candidate`, `learner` or `unknown`.
    pub role: &'static str,
    /// True for voters, false for learners.
    pub voter: bool,
    /// The highest log index it has applied; `null` when unknown.
    pub last_applied_index: Option<u64>,
    /// The highest log index the leader knows it holds; `null` when
    /// unknown (always, when a follower answered).
    pub matched_index: Option<u64>,
    /// Whether the answering node reached it recently.
    pub reachable: bool,
}

/// The membership after `add-learner`, `promote` or `remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipView {
    /// Every member after the change, ordered by id.
    pub members: Vec<MemberView>,
}

/// `orrery cluster transfer-leader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferView {
    /// The leader once the transfer settled; `null` when none is known.
    pub leader_id: Option<u64>,
}

/// `orrery cluster snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotView {
    /// The node that built the snapshot.
    pub node_id: u64,
    /// The last log index the snapshot covers.
    pub last_included_index: u64,
}

impl From<&pb::Member> for MemberView {
    fn from(m: &pb::Member) -> Self {
        MemberView {
            id: m.id,
            addr: m.addr.clone(),
            role: role_name(m.role()),
            voter: m.voter,
            last_applied_index: known(m.last_applied_index),
            matched_index: known(m.matched_index),
            reachable: m.reachable,
        }
    }
}

impl From<&pb::StatusResponse> for StatusView {
    fn from(r: &pb::StatusResponse) -> Self {
        StatusView {
            cluster_id: r.cluster_id.clone(),
            leader_id: known(r.leader_id),
            term: r.term,
            commit_index: r.commit_index,
            answered_by: r.header.as_ref().map_or(0, |h| h.node_id),
            members: members(&r.members),
        }
    }
}

impl From<&pb::MembershipResponse> for MembershipView {
    fn from(r: &pb::MembershipResponse) -> Self {
        MembershipView {
            members: members(&r.members),
        }
    }
}

impl From<&pb::TransferLeaderResponse> for TransferView {
    fn from(r: &pb::TransferLeaderResponse) -> Self {
        TransferView {
            leader_id: known(r.leader_id),
        }
    }
}

impl From<&pb::SnapshotResponse> for SnapshotView {
    fn from(r: &pb::SnapshotResponse) -> Self {
        SnapshotView {
            node_id: r.header.as_ref().map_or(0, |h| h.node_id),
            last_included_index: r.last_included_index,
        }
    }
}

fn members(list: &[pb::Member]) -> Vec<MemberView> {
    let mut members: Vec<MemberView> = list.iter().map(MemberView::from).collect();
    members.sort_by_key(|m| m.id);
    members
}

/// The lower-case name of a role.
fn role_name(role: pb::NodeRole) -> &'static str {
    match role {
        pb::NodeRole::Leader => "leader",
        pb::NodeRole::Follower => "follower",
        pb::NodeRole::Candidate => "candidate",
        pb::NodeRole::Learner => "learner",
        pb::NodeRole::Unspecified => "unknown",
    }
}

/// The member table shared by status and membership changes.
fn member_table(members: &[MemberView]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.addr.clone(),
                m.role.to_string(),
                if m.voter { "voter" } else { "learner" }.to_string(),
                cell(m.last_applied_index),
                cell(m.matched_index),
                yes_no(m.reachable),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "ADDRESS",
            "ROLE",
            "KIND",
            "APPLIED",
            "MATCHED",
            "REACHABLE",
        ],
        &rows,
    )
}

impl Render for StatusView {
    fn table(&self) -> String {
        let mut out = key_values(&[
            ("cluster", self.cluster_id.clone()),
            (
                "leader",
                self.leader_id
                    .map_or_else(|| "none".to_string(), |id| id.to_string()),
            ),
            ("term", self.term.to_string()),
            ("commit index", self.commit_index.to_string()),
            ("answered by", self.answered_by.to_string()),
        ]);
        out.push('\n');
        out.push_str(&member_table(&self.members));
        out
    }
}

impl Render for MembershipView {
    fn table(&self) -> String {
        member_table(&self.members)
    }
}

impl Render for TransferView {
    fn table(&self) -> String {
        match self.leader_id {
            Some(id) => format!("leader is now node {id}\n"),
            None => "no leader known after the transfer\n".to_string(),
        }
    }
}

impl Render for SnapshotView {
    fn table(&self) -> String {
        format!(
            "node {} built a snapshot up to log index {}\n",
            self.node_id, self.last_included_index
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{render, OutputFormat};

    fn header(node_id: u64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            node_id,
            revision: 9,
            raft_term: 4,
            applied_index: 42,
            leader_id: 1,
            ..Default::default()
        })
    }

    fn sample_members() -> Vec<pb::Member> {
        vec![
            pb::Member {
                id: 4,
                addr: "10.0.0.4:7400".into(),
                role: pb::NodeRole::Learner as i32,
                voter: false,
                last_applied_index: 0,
                matched_index: 0,
                reachable: false,
            },
            pb::Member {
                id: 1,
                addr: "10.0.0.1:7400".into(),
                role: pb::NodeRole::Leader as i32,
                voter: true,
                last_applied_index: 42,
                matched_index: 42,
                reachable: true,
            },
            pb::Member {
                id: 2,
                addr: "10.0.0.2:7400".into(),
                role: pb::NodeRole::Follower as i32,
                voter: true,
                last_applied_index: 40,
                matched_index: 41,
                reachable: true,
            },
        ]
    }

    fn sample_status() -> pb::StatusResponse {
        pb::StatusResponse {
            header: header(2),
            cluster_id: "c-7f3a".into(),
            leader_id: 1,
            term: 4,
            members: sample_members(),
            commit_index: 42,
        }
    }

    /// The status table: key lines, a blank line, members by id.
    #[test]
    fn status_table() {
        let text = render(OutputFormat::Table, &StatusView::from(&sample_status()));
        assert_eq!(
            text,
            "\
cluster       c-7f3a
leader        1
term          4
commit index  42
answered by   2

ID  ADDRESS        ROLE      KIND     APPLIED  MATCHED  REACHABLE
1   10.0.0.1:7400  leader    voter    42       42       yes
2   10.0.0.2:7400  follower  voter    40       41       yes
4   10.0.0.4:7400  learner   learner  -        -        no
"
        );
    }

    /// The status JSON: field names, order, and `null` for unknowns.
    #[test]
    fn status_json() {
        let mut response = sample_status();
        response.leader_id = 0;
        response.members.truncate(1);
        let text = render(OutputFormat::Json, &StatusView::from(&response));
        assert_eq!(
            text,
            r#"{
  "cluster_id": "c-7f3a",
  "leader_id": null,
  "term": 4,
  "commit_index": 42,
  "answered_by": 2,
  "members": [
    {
      "id": 4,
      "addr": "10.0.0.4:7400",
      "role": "learner",
      "voter": false,
      "last_applied_index": null,
      "matched_index": null,
      "reachable": false
    }
  ]
}
"#
        );
    }

    /// Membership changes print the member table, or `{"members": [...]}`.
    #[test]
    fn membership_outputs() {
        let response = pb::MembershipResponse {
            header: header(1),
            members: sample_members()[1..2].to_vec(),
        };
        let view = MembershipView::from(&response);
        assert_eq!(
            render(OutputFormat::Table, &view),
            "ID  ADDRESS        ROLE    KIND   APPLIED  MATCHED  REACHABLE\n\
             1   10.0.0.1:7400  leader  voter  42       42       yes\n"
        );
        assert_eq!(
            render(OutputFormat::Json, &view),
            r#"{
  "members": [
    {
      "id": 1,
      "addr": "10.0.0.1:7400",
      "role": "leader",
      "voter": true,
      "last_applied_index": 42,
      "matched_index": 42,
      "reachable": true
    }
  ]
}
"#
        );
    }

    /// Transfer and snapshot answers in both formats.
    #[test]
    fn transfer_and_snapshot_outputs() {
        let transfer = TransferView::from(&pb::TransferLeaderResponse {
            header: header(3),
            leader_id: 3,
        });
        assert_eq!(
            render(OutputFormat::Table, &transfer),
            "leader is now node 3\n"
        );
        assert_eq!(
            render(OutputFormat::Json, &transfer),
            "{\n  \"leader_id\": 3\n}\n"
        );
        let snapshot = SnapshotView::from(&pb::SnapshotResponse {
            header: header(2),
            last_included_index: 120,
        });
        assert_eq!(
            render(OutputFormat::Table, &snapshot),
            "node 2 built a snapshot up to log index 120\n"
        );
        assert_eq!(
            render(OutputFormat::Json, &snapshot),
            "{\n  \"node_id\": 2,\n  \"last_included_index\": 120\n}\n"
        );
    }
}
