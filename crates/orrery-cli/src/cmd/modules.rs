//! `orrery modules ...`: modules as the registry knows them, read on the
//! `Registry` service.

use orrery_proto::pb;

use crate::args::ModulesCommand;
use crate::client::Client;
use crate::cmd::namespaces::read_consistency;
use crate::errors::ClientError;
use crate::output::modules::{ModuleList, ModuleView};
use crate::output::{render, OutputFormat};

/// Runs one `modules` command and returns the text to print.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    command: ModulesCommand,
) -> Result<String, ClientError> {
    match command {
        ModulesCommand::List {
            namespace,
            consistency,
        } => {
            let request = pb::ListModulesRequest {
                namespace_prefix: namespace.unwrap_or_default(),
                consistency: read_consistency(consistency) as i32,
            };
            let response = client
                .registry(request, |mut registry, request| async move {
                    registry.list_modules(request).await
                })
                .await?;
            Ok(render(format, &ModuleList::from(&response)))
        }
        ModulesCommand::Show { name, consistency } => {
            let response = get_module(client, name, read_consistency(consistency)).await?;
            Ok(render(format, &ModuleView::from(&response)))
        }
    }
}

/// Reads one module (`NOT_FOUND` if there is none).
pub async fn get_module(
    client: &Client,
    qualified_name: String,
    consistency: pb::ReadConsistency,
) -> Result<pb::GetModuleResponse, ClientError> {
    client.get_module(&qualified_name, consistency).await
}
