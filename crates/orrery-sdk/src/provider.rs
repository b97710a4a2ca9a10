//! [`Provider`]: modules plus a config, checked up front, run with one call: the executor
//! server, the connection to the cluster (`session.rs`), and the state a program watches.

use std::collections::HashSet;
use std::sync::Arc;

use orrery_proto::pb;
use orrery_types::limits;
use orrery_types::names::{check_version, ModuleName};
use orrery_types::schema::{to_ctype, to_schema};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{millis, SdkConfig};
use crate::discovery::Resolver;
use crate::errors::{ConfigError, SdkError};
use crate::executor::{self, Executor, InFlight};
use crate::module::Module;
use crate::session::Session;
use crate::state::ConnectionState;

/// A provider: its modules and its configuration, ready to run.
///
/// ```no_run
/// use orrery_sdk::{Discovery, Module, ModuleError, Provider, SdkConfig};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn f() -> Result<(), orrery_sdk::SdkError> {
/// let upper = Module::typed("upper", "1.0.0", |s: String| async move {
///     Ok::<_, ModuleError>(s.to_uppercase())
/// });
/// let config = SdkConfig::new(
///     "acme.text",
///     Discovery::Static(vec!["127.0.0.1:7400".into()]),
/// );
/// let provider = Provider::new(config, vec![upper])?;
/// let shutdown = CancellationToken::new();
/// provider.run(None, shutdown).await
/// # }
/// ```
pub struct Provider {
    config: Arc<SdkConfig>,
    modules: Vec<Module>,
    state: watch::Sender<ConnectionState>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("namespace", &self.config.namespace)
            .field("modules", &self.modules)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider of `modules` configured by `config`. Checks the configuration and every
    /// module (names, versions, descriptions, tags, types) against the protocol's rules,
    /// so that a mistake is a typed error here rather than a refused registration later.
    pub fn new(config: SdkConfig, modules: Vec<Module>) -> Result<Provider, SdkError> {
        config.validate()?;
        check_modules(&modules)?;
        Ok(Provider {
            config: Arc::new(config),
            modules,
            state: watch::Sender::new(ConnectionState::Disconnected),
        })
    }

    /// The connection state, as it changes. Take it before `run`.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    /// Runs the provider until `shutdown` is cancelled or the cluster drains it: serves the
    /// executor on `listener` (or on a new listener bound to
    /// [`SdkConfig::executor_listen`] when `None`), registers, keeps the connection
    /// attached across node failures, then finishes the calls in flight, deregisters and
    /// stops the executor. Returns `Ok` after a drain or a shutdown; an error only for a
    /// refused registration, a listener that cannot be bound, or a deregistration no node
    /// took. Node failures and unavailability are retried, never returned.
    pub async fn run(
        self,
        listener: Option<TcpListener>,
        shutdown: CancellationToken,
    ) -> Result<(), SdkError> {
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(self.config.executor_listen)
                .await
                .map_err(|source| SdkError::Listen {
                    addr: self.config.executor_listen.to_string(),
                    source,
                })?,
        };
        let local = listener.local_addr().map_err(|source| SdkError::Listen {
            addr: self.config.executor_listen.to_string(),
            source,
        })?;
        let executor_endpoint = match &self.config.executor_advertised {
            Some(advertised) => advertised.clone(),
            None if local.ip().is_unspecified() => {
                return Err(ConfigError::new(
                    "executor_advertised",
                    format!(
                        "the executor listens on the wildcard {local}; say where nodes reach it"
                    ),
                )
                .into())
            }
            None => local.to_string(),
        };
        let resolver = Resolver::new(self.config.discovery.clone(), self.config.dns_server)?;
        let request = pb::RegisterRequest {
            request_id: None,
            namespace: self.config.namespace.clone(),
            group_id: self.config.group_id.clone().unwrap_or_default(),
            executor_endpoint,
            modules: self.modules.iter().map(Module::declaration).collect(),
            metadata: self
                .config
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            lease_ttl_ms: self.config.lease_ttl.map_or(0, millis),
            executor_tls: false,
            canary: self.config.canary.as_ref().map(|c| c.to_policy()),
        };
        let in_flight = InFlight::new();
        let stop_executor = CancellationToken::new();
        let server = tokio::spawn(executor::serve(
            listener,
            Executor::new(&self.modules, in_flight.clone()),
            stop_executor.clone(),
        ));
        let session = Session::new(
            self.config.clone(),
            resolver,
            request,
            in_flight,
            self.state.clone(),
        );
        let outcome = session.run(&shutdown).await;
        stop_executor.cancel();
        let served = server.await;
        self.state.send_replace(ConnectionState::Disconnected);
        outcome?;
        match served {
            Ok(result) => result.map_err(SdkError::from),
            Err(join) => Err(SdkError::ExecutorTask(join.to_string())),
        }
    }
}

/// Checks each module against the rules a node would apply at registration.
fn check_modules(modules: &[Module]) -> Result<(), SdkError> {
    if modules.is_empty() || modules.len() > limits::MAX_MODULES_PER_REGISTRATION {
        return Err(SdkError::InvalidModule {
            path: "modules".into(),
            message: format!(
                "a provider serves 1 to {} modules, not {}",
                limits::MAX_MODULES_PER_REGISTRATION,
                modules.len()
            ),
        });
    }
    let mut names = HashSet::new();
    for (i, module) in modules.iter().enumerate() {
        let invalid = |field: &str, message: String| SdkError::InvalidModule {
            path: format!("modules[{i}].{field}"),
            message,
        };
        ModuleName::parse(&module.name).map_err(|e| invalid("name", e.to_string()))?;
        if !names.insert(module.name.as_str()) {
            return Err(invalid(
                "name",
                format!("module {:?} is declared twice", module.name),
            ));
        }
        check_version(&module.version).map_err(|e| invalid("version", e.to_string()))?;
        if module.description.chars().count() > limits::MAX_DESCRIPTION_LEN {
            return Err(invalid(
                "description",
                format!("longer than {} characters", limits::MAX_DESCRIPTION_LEN),
            ));
        }
        if module.tags.len() > limits::MAX_LABELS
            || module.tags.iter().any(|(k, v)| {
                k.chars().count() > limits::MAX_LABEL_LEN
                    || v.chars().count() > limits::MAX_LABEL_LEN
            })
        {
            return Err(invalid(
                "tags",
                format!(
                    "at most {} tags of at most {} characters",
                    limits::MAX_LABELS,
                    limits::MAX_LABEL_LEN
                ),
            ));
        }
        for (field, ty) in [
            ("input_type", &module.input),
            ("output_type", &module.output),
        ] {
            to_ctype(&to_schema(ty)).map_err(|e| invalid(field, e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Discovery;
    use crate::module::ModuleError;
    use orrery_types::{CType, CValue};

    fn echo(name: &str) -> Module {
        Module::new(
            name,
            "1.0.0",
            CType::String,
            CType::String,
            |v| async move { Ok::<CValue, ModuleError>(v) },
        )
    }

    fn config() -> SdkConfig {
        SdkConfig::new("acme", Discovery::Static(vec!["127.0.0.1:1".into()]))
    }

    /// Bad modules and bad config are refused by `Provider::new` with the culprit named.
    /// Steps: no module; a bad name; a repeated name; a bad version; an empty union type;
    /// a bad namespace; then a good provider starts Disconnected.
    #[test]
    fn checks_modules_and_config_up_front() {
        let path_of = |modules: Vec<Module>| match Provider::new(config(), modules) {
            Err(SdkError::InvalidModule { path, .. }) => path,
            other => panic!("expected InvalidModule, got {other:?}"),
        };
        assert_eq!(path_of(vec![]), "modules");
        assert_eq!(path_of(vec![echo("9lives")]), "modules[0].name");
        assert_eq!(path_of(vec![echo("a"), echo("a")]), "modules[1].name");
        let bad_version = Module::new("a", "", CType::String, CType::String, |v| async move {
            Ok::<CValue, ModuleError>(v)
        });
        assert_eq!(path_of(vec![bad_version]), "modules[0].version");
        let empty_union = Module::new("a", "1", CType::Union(vec![]), CType::String, |v| async {
            Ok::<CValue, ModuleError>(v)
        });
        assert_eq!(path_of(vec![empty_union]), "modules[0].input_type");

        let mut bad = config();
        bad.namespace = String::new();
        assert!(matches!(
            Provider::new(bad, vec![echo("a")]),
            Err(SdkError::Config(e)) if e.field() == "namespace"
        ));
        let provider = Provider::new(config(), vec![echo("a")]).unwrap();
        assert_eq!(*provider.state().borrow(), ConnectionState::Disconnected);
    }
}
