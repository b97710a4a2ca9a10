//! The replicas' final state: every node's own copy of the namespace table,
//! read without asking the leader once the cluster has healed and every
//! replica applied the leader's commit index, must be the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One namespace row as a replica holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRow {
    /// The namespace.
    pub namespace: String,
    /// The owning group, empty when a connection owns it.
    pub owner_group: String,
    /// The owning connection, 0 when a group owns it.
    pub owner_connection_id: u64,
    /// Reserved by an operator.
    pub reserved: bool,
    /// Bumped on every change of owner.
    pub epoch: u64,
    /// The revision of its last change.
    pub modified_revision: u64,
}

/// A replica's table and where it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The node.
    pub node: u64,
    /// The replica's registry revision.
    pub revision: u64,
    /// The replica's applied log index.
    pub applied_index: u64,
    /// Every namespace, ordered by name.
    pub namespaces: Vec<NamespaceRow>,
    /// Every module's qualified name and serving connection count, ordered.
    pub modules: Vec<(String, u32)>,
}

impl ReplicaState {
    /// SHA-256 over the revision, the namespace rows and the modules, hex.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.revision.to_be_bytes());
        for row in &self.namespaces {
            hasher.update(serde_json::to_vec(row).expect("rows serialize"));
            hasher.update(b"\n");
        }
        for (module, serving) in &self.modules {
            hasher.update(format!("{module} {serving}\n"));
        }
        hex::encode(hasher.finalize())
    }
}

/// Every node's digest, and whether they all agree (and there are any).
pub fn compare(replicas: &[ReplicaState]) -> (BTreeMap<u64, String>, bool) {
    let digests: BTreeMap<u64, String> = replicas.iter().map(|r| (r.node, r.digest())).collect();
    let mut distinct: Vec<&String> = digests.values().collect();
    distinct.sort();
    distinct.dedup();
    let agree = !digests.is_empty() && distinct.len() == 1;
    (digests, agree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(node: u64, epoch: u64) -> ReplicaState {
        ReplicaState {
            node,
            revision: 7,
            applied_index: 9,
            namespaces: vec![NamespaceRow {
                namespace: "a".into(),
                owner_group: "g".into(),
                owner_connection_id: 0,
                reserved: true,
                epoch,
                modified_revision: 7,
            }],
            modules: vec![("jpv.a.m".into(), 1)],
        }
    }

    #[test]
    fn replicas_that_differ_in_one_field_disagree() {
        assert!(compare(&[replica(1, 3), replica(2, 3)]).1);
        assert!(!compare(&[replica(1, 3), replica(2, 4)]).1);
        assert!(!compare(&[]).1);
    }
}
