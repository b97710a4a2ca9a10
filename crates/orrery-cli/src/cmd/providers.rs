//! `orrery providers ...`: provider connections, read on the `Registry`
//! service and drained on `ClusterAdmin`. A drain carries a request id made
//! once per command, so the client's retries after a failover are answered
//! with the first outcome.

use orrery_proto::pb;

use crate::args::ProvidersCommand;
use crate::client::Client;
use crate::cmd::namespaces::read_consistency;
use crate::errors::ClientError;
use crate::output::providers::{ProviderList, ProviderView};
use crate::output::{render, OutputFormat};

/// Runs one `providers` command and returns the text to print.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    command: ProvidersCommand,
) -> Result<String, ClientError> {
    match command {
        ProvidersCommand::List {
            namespace,
            consistency,
        } => {
            let request = pb::ListProvidersRequest {
                namespace_prefix: namespace.unwrap_or_default(),
                group_id: String::new(),
                consistency: read_consistency(consistency) as i32,
            };
            let response = client
                .registry(request, |mut registry, request| async move {
                    registry.list_providers(request).await
                })
                .await?;
            Ok(render(format, &ProviderList::from(&response)))
        }
        ProvidersCommand::Show { id, consistency } => {
            let request = pb::GetProviderRequest {
                connection_id: id,
                consistency: read_consistency(consistency) as i32,
            };
            let response = client
                .registry(request, |mut registry, request| async move {
                    registry.get_provider(request).await
                })
                .await?;
            Ok(render(format, &ProviderView::from(&response)))
        }
        ProvidersCommand::Drain { id, deadline } => {
            let request = pb::DrainProviderRequest {
                request_id: Some(client.request_id()),
                connection_id: id,
                deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            };
            let response = client
                .admin(request, |mut admin, request| async move {
                    admin.drain_provider(request).await
                })
                .await?;
            Ok(render(format, &ProviderView::from(&response)))
        }
    }
}
