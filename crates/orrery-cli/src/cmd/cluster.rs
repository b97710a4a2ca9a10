//! `orrery cluster ...`: status, membership changes, leadership transfer and
//! snapshots, on the `ClusterAdmin` service.
//!
//! Membership requests carry no request id (see `docs/protocol.md`): they
//! name the state they want, so the client's retries are safe as they are.

use orrery_proto::pb;

use crate::args::ClusterCommand;
use crate::client::Client;
use crate::errors::ClientError;
use crate::output::cluster::{MembershipView, SnapshotView, StatusView, TransferView};
use crate::output::{render, OutputFormat};

/// Runs one `cluster` command and returns the text to print.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    command: ClusterCommand,
) -> Result<String, ClientError> {
    match command {
        ClusterCommand::Status => {
            let response = client
                .admin(pb::StatusRequest {}, |mut admin, request| async move {
                    admin.status(request).await
                })
                .await?;
            Ok(render(format, &StatusView::from(&response)))
        }
        ClusterCommand::AddLearner { id, addr } => {
            let request = pb::AddLearnerRequest { node_id: id, addr };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.add_learner(request).await
                })
                .await?;
            Ok(render(format, &MembershipView::from(&response)))
        }
        ClusterCommand::Promote { id } => {
            let request = pb::PromoteRequest { node_id: id };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.promote(request).await
                })
                .await?;
            Ok(render(format, &MembershipView::from(&response)))
        }
        ClusterCommand::Remove { id } => {
            let request = pb::RemoveNodeRequest { node_id: id };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.remove_node(request).await
                })
                .await?;
            Ok(render(format, &MembershipView::from(&response)))
        }
        ClusterCommand::TransferLeader { id } => {
            let request = pb::TransferLeaderRequest { to_node_id: id };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.transfer_leader(request).await
                })
                .await?;
            Ok(render(format, &TransferView::from(&response)))
        }
        ClusterCommand::Snapshot => {
            let response = client
                .admin(pb::SnapshotRequest {}, |mut admin, request| async move {
                    admin.snapshot(request).await
                })
                .await?;
            Ok(render(format, &SnapshotView::from(&response)))
        }
    }
}
