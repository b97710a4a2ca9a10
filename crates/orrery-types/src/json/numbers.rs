//! How integers and floats are written in JSON, shared by both JSON forms,
//! and the names of JSON kinds used in error messages.

use crate::errors::TypeProblem;
use crate::path::Located;
use serde::Serializer;
use serde_json::Value as Json;

/// The largest integer a JSON number carries without loss in every reader
/// (JavaScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Writes an integer: a number when it is safe, a decimal string otherwise.
pub(super) fn serialize_int<S: Serializer>(i: i64, s: S) -> Result<S::Ok, S::Error> {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
        s.serialize_i64(i)
    } else {
        s.collect_str(&i)
    }
}

/// Writes a float: a number when finite, `"NaN"`, `"Infinity"` or
/// `"-Infinity"` otherwise.
pub(super) fn serialize_float<S: Serializer>(f: f64, s: S) -> Result<S::Ok, S::Error> {
    if f.is_nan() {
        s.serialize_str("NaN")
    } else if f == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if f == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        s.serialize_f64(f)
    }
}

/// Reads an integer from a JSON number or a decimal string.
pub(super) fn int_from_json(json: &Json) -> Result<i64, Located<TypeProblem>> {
    let malformed = |what: String| Located::here(TypeProblem::Malformed(what));
    match json {
        Json::Number(n) => match n.as_i64() {
            Some(i) => Ok(i),
            None if n.is_u64() => Err(malformed(format!("integer {n} is out of range"))),
            None => Err(malformed(format!("expected an integer, found {n}"))),
        },
        Json::String(text) => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!("{text:?} is not a decimal integer")));
            }
            text.parse()
                .map_err(|_| malformed(format!("integer {text} is out of range")))
        }
        other => Err(found("Int", other)),
    }
}

/// Reads a float from any JSON number or one of the non-finite names.
pub(super) fn float_from_json(json: &Json) -> Result<f64, Located<TypeProblem>> {
    match json {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| Located::here(TypeProblem::Malformed(format!("{n} is not a float")))),
        Json::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(Located::here(TypeProblem::Malformed(format!(
                "{text:?} is not a float (numbers, \"NaN\", \"Infinity\" or \"-Infinity\")"
            )))),
        },
        other => Err(found("Float", other)),
    }
}

/// A mismatch between what was expected and the JSON found.
pub(super) fn found(expected: impl Into<String>, json: &Json) -> Located<TypeProblem> {
    Located::here(TypeProblem::Mismatch {
        expected: expected.into(),
        found: json_kind(json).into(),
    })
}

/// The kind of a JSON value, as error messages name it.
fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "JSON null",
        Json::Bool(_) => "JSON boolean",
        Json::Number(_) => "JSON number",
        Json::String(_) => "JSON string",
        Json::Array(_) => "JSON array",
        Json::Object(_) => "JSON object",
    }
}
