//! Every error the types crate reports, one enum per concern.
//!
//! ```text
//!   NameError     a name, endpoint or reserved-namespace rule is broken (names.rs)
//!   SchemaError   a protobuf TypeSchema is malformed or too big (schema.rs)
//!   TypeError     a value does not match its type; carries the path (check.rs)
//!   CodecError    bytes or JSON do not decode to a value (wire.rs, json/)
//!       └─ CodecError::Type(TypeError) when the decoded text is well formed
//!          but does not fit the type that guides it
//! ```
//!
//! All of them are `Clone + PartialEq + Serialize` so that they can travel in
//! replicated outcomes and be compared in tests. The server maps each to an
//! `ErrorCode` of the protocol (INVALID_NAME, INVALID_SCHEMA, TYPE_ERROR, ...).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A name, endpoint or namespace reservation rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What was being named (namespace, module name, ...).
        kind: NameKind,
    },
    /// The name is longer than its limit.
    #[error("{kind} {name:?} is {len} characters long; the limit is {max}")]
    TooLong {
        /// What was being named.
        kind: NameKind,
        /// The name as given.
        name: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name breaks its character rules.
    #[error("{kind} {name:?} is invalid: {reason}")]
    Invalid {
        /// What was being named.
        kind: NameKind,
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The namespace falls under a reserved prefix.
    #[error("namespace {namespace:?} is reserved (under {prefix:?})")]
    Reserved {
        /// The namespace asked for.
        namespace: String,
        /// The reserved prefix it falls under.
        prefix: String,
    },
}

/// What kind of name a [`NameError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameKind {
    /// A namespace (`a.b.c`).
    Namespace,
    /// A module name, product field or union variant (one segment).
    ModuleName,
    /// A qualified module name (`namespace.module`).
    QualifiedName,
    /// A provider group id.
    GroupId,
    /// An executor endpoint (`host:port`).
    Endpoint,
    /// A module version.
    Version,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Namespace => "namespace",
            NameKind::ModuleName => "module name",
            NameKind::QualifiedName => "qualified module name",
            NameKind::GroupId => "group id",
            NameKind::Endpoint => "executor endpoint",
            NameKind::Version => "version",
        })
    }
}

/// A protobuf `TypeSchema` could not be turned into a [`crate::CType`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SchemaError {
    /// A required part of the schema is not set (`kind`, a list's element, ...).
    #[error("{path}: {what} is missing")]
    Missing {
        /// Where in the schema, e.g. `$.fields[2].type`.
        path: String,
        /// What is missing.
        what: String,
    },
    /// A primitive type is UNSPECIFIED or unknown.
    #[error("{path}: unknown primitive type {value}")]
    UnknownPrimitive {
        /// Where in the schema.
        path: String,
        /// The enum value received.
        value: i32,
    },
    /// A field or variant name breaks the naming rules.
    #[error("{path}: {source}")]
    BadName {
        /// Where in the schema.
        path: String,
        /// The rule broken.
        source: NameError,
    },
    /// Two fields of a product, or two variants of a union, share a name.
    #[error("{path}: duplicate name {name:?}")]
    DuplicateName {
        /// Where in the schema.
        path: String,
        /// The repeated name.
        name: String,
    },
    /// A union has no variants, so no value could ever have its type.
    #[error("{path}: a union needs at least one variant")]
    EmptyUnion {
        /// Where in the schema.
        path: String,
    },
    /// The schema nests deeper than the limit.
    #[error("{path}: schema nests deeper than {max} levels")]
    TooDeep {
        /// Where the limit was crossed.
        path: String,
        /// The limit.
        max: usize,
    },
    /// A product or union has more members than the limit.
    #[error("{path}: {count} fields or variants; the limit is {max}")]
    TooWide {
        /// Where in the schema.
        path: String,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// A value does not match its type.
///
/// Displays as `$.items[3].price: expected Float, found String`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct TypeError {
    /// Where in the value, from the root `$`.
    pub path: String,
    /// What is wrong there.
    pub problem: TypeProblem,
}

/// What is wrong at the place a [`TypeError`] points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TypeProblem {
    /// The value is of another kind than the type asks for.
    #[error("expected {expected}, found {found}")]
    Mismatch {
        /// The type, written as in [`crate::CType`]'s `Display`.
        expected: String,
        /// The kind of value found (`String`, `List`, `null`, ...).
        found: String,
    },
    /// A product field the type declares is absent.
    #[error("missing field {0:?}")]
    MissingField(String),
    /// A product field the type does not declare, or one out of order.
    #[error("unexpected field {found:?} (expected {expected})")]
    UnexpectedField {
        /// The field found.
        found: String,
        /// What the type expects at this position (`field "x"` or `no more fields`).
        expected: String,
    },
    /// A union variant the type does not declare.
    #[error("unknown variant {0:?}")]
    UnknownVariant(String),
    /// A map key appears twice.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A value written as text does not parse (e.g. an integer out of range).
    #[error("{0}")]
    Malformed(String),
}

/// Bytes or JSON text could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CodecError {
    /// The protobuf bytes are not a `Value` message.
    #[error("invalid protobuf value: {0}")]
    Protobuf(String),
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A protobuf `Value` (or one nested in it) has no kind set, or a
    /// required nested value is missing.
    #[error("{path}: {what} is missing")]
    Missing {
        /// Where in the value.
        path: String,
        /// What is missing.
        what: String,
    },
    /// Well-formed text that does not fit the type guiding the decode, or
    /// a self-describing document of the wrong shape.
    #[error(transparent)]
    Type(#[from] TypeError),
}
