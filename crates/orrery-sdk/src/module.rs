//! A module definition: what a provider declares to the cluster (name, version,
//! description, tags, input and output types) and the async handler that runs it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use orrery_proto::pb;
use orrery_types::schema::to_schema;
use orrery_types::{CType, CValue};

use crate::typed::OrreryType;

/// Why a handler failed. The caller gets it as an `ExecutionError` RUNTIME_ERROR with
/// this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModuleError {
    message: String,
}

impl ModuleError {
    /// A failure explained by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ModuleError {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for ModuleError {
    fn from(message: String) -> Self {
        ModuleError::new(message)
    }
}

impl From<&str> for ModuleError {
    fn from(message: &str) -> Self {
        ModuleError::new(message)
    }
}

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<CValue, ModuleError>> + Send>>;
/// A handler with its types erased: one input value in, one output value out.
pub(crate) type Handler = Arc<dyn Fn(CValue) -> HandlerFuture + Send + Sync>;

/// One module a provider serves. Build it with [`Module::new`] (values) or
/// [`Module::typed`] (Rust types), then add a description and tags.
///
/// ```
/// use orrery_sdk::{Module, ModuleError};
///
/// let upper = Module::typed("upper", "1.0.0", |s: String| async move {
///     Ok::<_, ModuleError>(s.to_uppercase())
/// })
/// .description("Upper-cases its input")
/// .tag("team", "text");
/// assert_eq!(upper.name(), "upper");
/// ```
#[derive(Clone)]
pub struct Module {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) input: CType,
    pub(crate) output: CType,
    pub(crate) handler: Handler,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("input", &self.input)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// A module `name` at `version` taking values of `input` and returning values of
    /// `output`. The SDK type-checks every input before `handler` sees it and every
    /// output before the caller does.
    pub fn new<F, Fut>(
        name: impl Into<String>,
        version: impl Into<String>,
        input: CType,
        output: CType,
        handler: F,
    ) -> Self
    where
        F: Fn(CValue) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CValue, ModuleError>> + Send + 'static,
    {
        Module {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            tags: BTreeMap::new(),
            input,
            output,
            handler: Arc::new(move |value| Box::pin(handler(value))),
        }
    }

    /// A module whose types come from Rust types: `handler` takes an `I` and returns an
    /// `O`. An input that type-checks but does not convert (which a correct
    /// [`OrreryType`] impl never allows) fails the call with RUNTIME_ERROR.
    pub fn typed<I, O, F, Fut>(
        name: impl Into<String>,
        version: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: OrreryType + Send + 'static,
        O: OrreryType + Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ModuleError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Module::new(name, version, I::ctype(), O::ctype(), move |value| {
            let handler = handler.clone();
            async move {
                let input =
                    I::from_value(value).map_err(|e| ModuleError::new(format!("input {e}")))?;
                handler(input).await.map(O::into_value)
            }
        })
    }

    /// Sets what the module does, shown by `orrery modules get`; at most 1024 characters.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a free-form label (at most 32 per module, 256 characters each).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The module name within the namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The input type.
    pub fn input_type(&self) -> &CType {
        &self.input
    }

    /// The output type.
    pub fn output_type(&self) -> &CType {
        &self.output
    }

    /// The declaration sent in `RegisterRequest.modules`.
    pub(crate) fn declaration(&self) -> pb::ModuleDeclaration {
        pb::ModuleDeclaration {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            input_type: Some(to_schema(&self.input)),
            output_type: Some(to_schema(&self.output)),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}
