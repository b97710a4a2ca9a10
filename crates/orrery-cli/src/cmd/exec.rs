//! `orrery exec NS.MODULE --input JSON`: one call of a module through the
//! `Registry` service.
//!
//! 1. The module is read (stale consistency: any node's replica will do)
//!    for its input and output types.
//! 2. `--input` is decoded as typed JSON against the input type; a value
//!    that does not fit is [`CliError::InvalidInput`] (exit code 2) and
//!    nothing is executed.
//! 3. The SDK's [`Client::execute_with`] runs it (`Registry.Execute`, with
//!    the client's time budget as `timeout_ms`). The output is printed as
//!    typed JSON against the output type; an `ExecutionError` is
//!    [`CallError::Execution`].

use std::time::Duration;

use orrery_proto::pb;
use orrery_types::{json, schema, CType};

use crate::args::ExecArgs;
use crate::client::Client;
use crate::cmd::modules::get_module;
use crate::errors::{CallError, CliError};
use crate::output::modules::ExecView;
use crate::output::{render, OutputFormat};

/// The time budget of `exec` when no flag, variable or file sets `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `exec` and returns the text to print.
pub async fn run(
    client: &Client,
    format: OutputFormat,
    args: ExecArgs,
) -> Result<String, CliError> {
    let ExecArgs {
        module,
        input,
        metadata,
    } = args;
    let info = get_module(client, module.clone(), pb::ReadConsistency::Stale)
        .await?
        .module
        .unwrap_or_default();
    let input_type = module_type(&module, "input", info.input_type.as_ref())?;
    let output_type = module_type(&module, "output", info.output_type.as_ref())?;
    let value = json::decode_str(&input, &input_type).map_err(|source| CliError::InvalidInput {
        module: module.clone(),
        source,
    })?;
    let executed = client
        .execute_with(&module, value, metadata.into_iter().collect())
        .await?;
    let output = json::encode(&executed.output, &output_type)
        .map_err(|e| bad_answer(format!("{module}: output: {e}")))?;
    Ok(render(
        format,
        &ExecView {
            output,
            connection_id: executed.connection_id,
            version: executed.version,
            execution_id: executed.execution_id,
        },
    ))
}

/// A module's declared type, or [`CallError::BadAnswer`] when the registry
/// sent none or one that does not read.
fn module_type(
    module: &str,
    which: &str,
    schema: Option<&pb::TypeSchema>,
) -> Result<CType, CliError> {
    let schema =
        schema.ok_or_else(|| bad_answer(format!("{module}: the {which} type is missing")))?;
    schema::to_ctype(schema).map_err(|e| bad_answer(format!("{module}: the {which} type: {e}")))
}

/// An answer the command cannot use, explained by `message`.
fn bad_answer(message: String) -> CliError {
    CliError::Call(CallError::BadAnswer(message))
}
