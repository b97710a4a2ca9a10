//! Orrery's type system and everything that needs no I/O.
//!
//! - [`CType`] and [`CValue`]: the types a module's input and output can
//!   have, and the values of those types.
//! - [`check()`]: does a value have a type? Errors give the path and both
//!   sides (`$.items[3].price: expected Float, found String`).
//! - Codecs, each with typed errors and no panic on any input:
//!   [`schema`] (protobuf `TypeSchema` <-> `CType`), [`wire`] (protobuf
//!   `Value` <-> `CValue`, the language-neutral wire form) and [`json`]
//!   (typed JSON for people, self-describing JSON for when no type is at hand).
//! - [`names`] and [`limits`]: every naming rule and size limit of the protocol.
//! - [`cmd`]: the commands the replicated log carries and their outcomes.
//! - [`errors`]: the error enums and how they relate.
//!
//! With the `arbitrary` feature, `arbitrary` offers proptest strategies
//! for types, values of a type, and names, for other crates' tests.

pub mod check;
pub mod cmd;
pub mod ctype;
pub mod cvalue;
pub mod errors;
pub mod json;
pub mod limits;
pub mod names;
mod path;
pub mod pb;
pub mod schema;
pub mod wire;

#[cfg(any(test, feature = "arbitrary"))]
pub mod arbitrary;

pub use check::check;
pub use ctype::CType;
pub use cvalue::CValue;
pub use errors::{CodecError, NameError, NameKind, SchemaError, TypeError, TypeProblem};
