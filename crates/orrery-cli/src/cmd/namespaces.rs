//! `orrery namespaces ...`: operator reservations and namespace reads, on
//! the `ClusterAdmin` service. Reservations and releases carry a request id
//! made once per command, so the client's retries after a failover are
//! answered with the first outcome.

use orrery_proto::pb;

use crate::args::{Consistency, NamespacesCommand};
use crate::client::Client;
use crate::errors::ClientError;
use crate::output::namespaces::{NamespaceChange, NamespaceList, NamespaceView};
use crate::output::{render, OutputFormat};

/// Runs one `namespaces` command and returns the text to print.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    command: NamespacesCommand,
) -> Result<String, ClientError> {
    match command {
        NamespacesCommand::Reserve { name, group } => {
            let request = pb::ReserveNamespaceRequest {
                request_id: Some(client.request_id()),
                namespace: name,
                group_id: group,
            };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.reserve_namespace(request).await
                })
                .await?;
            Ok(render(format, &NamespaceChange::reserved(&response)))
        }
        NamespacesCommand::Release { name } => {
            let request = pb::ReleaseNamespaceRequest {
                request_id: Some(client.request_id()),
                namespace: name,
            };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.release_namespace(request).await
                })
                .await?;
            Ok(render(format, &NamespaceChange::released(&response)))
        }
        NamespacesCommand::List {
            prefix,
            consistency,
        } => {
            let request = pb::ListNamespacesRequest {
                prefix: prefix.unwrap_or_default(),
                consistency: read_consistency(consistency) as i32,
            };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.list_namespaces(request).await
                })
                .await?;
            Ok(render(format, &NamespaceList::from(&response)))
        }
        NamespacesCommand::Get { name, consistency } => {
            let request = pb::GetNamespaceRequest {
                namespace: name,
                consistency: read_consistency(consistency) as i32,
            };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.get_namespace(request).await
                })
                .await?;
            Ok(render(format, &NamespaceView::from(&response)))
        }
    }
}

/// The protocol's name for a consistency level.
pub fn read_consistency(consistency: Consistency) -> pb::ReadConsistency {
    match consistency {
        Consistency::Linearizable => pb::ReadConsistency::Linearizable,
        Consistency::Stale => pb::ReadConsistency::Stale,
    }
}
