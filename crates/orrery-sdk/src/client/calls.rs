//! The typed calls of a pipeline runtime on the `Registry` service: list and get
//! modules, and execute one with a [`CValue`], each through the client's failover.

use std::collections::BTreeMap;

use orrery_proto::pb;
use orrery_types::{wire, CValue};

use super::{CallError, Client, ClientError};

/// The answer of a successful call through the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// The module's output, checked by the node against the output type.
    pub output: CValue,
    /// The provider connection that served the call.
    pub connection_id: u64,
    /// The version of the module that served it.
    pub version: String,
    /// The call's execution id.
    pub execution_id: String,
}

impl Client {
    /// The modules of `namespace_prefix` and the namespaces under it (empty: all),
    /// ordered by qualified name, read linearizably.
    pub async fn list_modules(
        &self,
        namespace_prefix: &str,
    ) -> Result<Vec<pb::ModuleInfo>, ClientError> {
        let request = pb::ListModulesRequest {
            namespace_prefix: namespace_prefix.to_string(),
            consistency: pb::ReadConsistency::Linearizable as i32,
        };
        let response = self
            .registry(request, |mut registry, request| async move {
                registry.list_modules(request).await
            })
            .await?;
        Ok(response.modules)
    }

    /// One module, read with `consistency` (a `NOT_FOUND` [`ClientError::Api`] when
    /// there is none).
    pub async fn get_module(
        &self,
        qualified_name: &str,
        consistency: pb::ReadConsistency,
    ) -> Result<pb::GetModuleResponse, ClientError> {
        let request = pb::GetModuleRequest {
            qualified_name: qualified_name.to_string(),
            consistency: consistency as i32,
        };
        self.registry(request, |mut registry, request| async move {
            registry.get_module(request).await
        })
        .await
    }

    /// Runs `qualified_name` (`namespace.name`) on `input` through any node and returns
    /// its output. A failed module is [`CallError::Execution`].
    pub async fn execute(&self, qualified_name: &str, input: CValue) -> Result<CValue, CallError> {
        self.execute_with(qualified_name, input, BTreeMap::new())
            .await
            .map(|executed| executed.output)
    }

    /// As [`Client::execute`], passing `metadata` to the provider, and answering which
    /// connection and version served the call. The client's time budget is the call's
    /// `timeout_ms`; the node that takes the call gives it its execution id.
    pub async fn execute_with(
        &self,
        qualified_name: &str,
        input: CValue,
        metadata: BTreeMap<String, String>,
    ) -> Result<Executed, CallError> {
        let request = pb::ExecuteModuleRequest {
            qualified_name: qualified_name.to_string(),
            input: Some(wire::to_pb(&input)),
            metadata: metadata.into_iter().collect(),
            timeout_ms: u64::try_from(self.config().timeout.as_millis()).unwrap_or(u64::MAX),
            execution_id: String::new(),
        };
        let response = self
            .registry(request, |mut registry, request| async move {
                registry.execute(request).await
            })
            .await?;
        let output = match response.result {
            Some(pb::execute_module_response::Result::Output(output)) => output,
            Some(pb::execute_module_response::Result::Error(error)) => {
                return Err(CallError::Execution {
                    code: pb::ExecutionErrorCode::try_from(error.code).unwrap_or_default(),
                    message: error.message,
                })
            }
            None => {
                return Err(CallError::BadAnswer(format!(
                    "{qualified_name}: the answer carries neither an output nor an error"
                )))
            }
        };
        let output = wire::from_pb(output)
            .map_err(|e| CallError::BadAnswer(format!("{qualified_name}: output: {e}")))?;
        Ok(Executed {
            output,
            connection_id: response.connection_id,
            version: response.version,
            execution_id: response.execution_id,
        })
    }
}
