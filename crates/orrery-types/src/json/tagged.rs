//! The self-describing JSON form: each value is an object with one key that
//! names its kind, so it can be read back without a type.
//!
//! ```text
//! {"string": "Ada"}            {"int": 36}   {"int": "9007199254740993"}
//! {"float": 2.5}  {"float": "NaN"}          {"bool": true}
//! {"list": [<value>, ...]}     {"map": [[<key>, <value>], ...]}
//! {"product": {"field": <value>, ...}}      (fields in order)
//! {"union": {"variant": <value>}}
//! {"optional": null}  {"optional": <value>}
//! ```
//!
//! Every [`CValue`] whose product field names are unique round-trips
//! exactly (NaN payloads aside, see the parent module).

use super::numbers::{float_from_json, found, int_from_json, serialize_float, serialize_int};
use crate::check::finish;
use crate::errors::{CodecError, TypeProblem};
use crate::path::{Located, Segment, WithinExt};
use crate::CValue;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

/// Encodes any value in the self-describing form, as a JSON tree.
pub fn encode_tagged(value: &CValue) -> Json {
    serde_json::to_value(Tagged(value)).expect("a tagged value always serializes")
}

/// Encodes any value in the self-describing form, as compact JSON text.
pub fn encode_tagged_string(value: &CValue) -> String {
    serde_json::to_string(&Tagged(value)).expect("a tagged value always serializes")
}

/// Decodes a self-describing JSON tree.
pub fn decode_tagged(json: &Json) -> Result<CValue, CodecError> {
    decode_at(json).map_err(|located| CodecError::Type(finish(located)))
}

/// Decodes self-describing JSON text.
pub fn decode_tagged_str(text: &str) -> Result<CValue, CodecError> {
    let json: Json = serde_json::from_str(text).map_err(|e| CodecError::Json(e.to_string()))?;
    decode_tagged(&json)
}

/// A value serialized in the self-describing form.
struct Tagged<'a>(&'a CValue);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            CValue::String(text) => map.serialize_entry("string", text)?,
            CValue::Int(i) => map.serialize_entry("int", &IntJson(*i))?,
            CValue::Float(f) => map.serialize_entry("float", &FloatJson(*f))?,
            CValue::Bool(b) => map.serialize_entry("bool", b)?,
            CValue::List(items) => map.serialize_entry("list", &Seq(items))?,
            CValue::Map(entries) => map.serialize_entry("map", &Entries(entries))?,
            CValue::Product(fields) => map.serialize_entry("product", &Fields(fields))?,
            CValue::Union(variant, value) => {
                map.serialize_entry("union", &Variant(variant, value))?
            }
            CValue::Optional(None) => map.serialize_entry("optional", &())?,
            CValue::Optional(Some(value)) => map.serialize_entry("optional", &Tagged(value))?,
        }
        map.end()
    }
}

struct IntJson(i64);
impl Serialize for IntJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_int(self.0, s)
    }
}

struct FloatJson(f64);
impl Serialize for FloatJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_float(self.0, s)
    }
}

struct Seq<'a>(&'a [CValue]);
impl Serialize for Seq<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for value in self.0 {
            seq.serialize_element(&Tagged(value))?;
        }
        seq.end()
    }
}

struct Entries<'a>(&'a [(CValue, CValue)]);
impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (key, value) in self.0 {
            seq.serialize_element(&(Tagged(key), Tagged(value)))?;
        }
        seq.end()
    }
}

struct Fields<'a>(&'a [(String, CValue)]);
impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Tagged(value))?;
        }
        map.end()
    }
}

struct Variant<'a>(&'a str, &'a CValue);
impl Serialize for Variant<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &Tagged(self.1))?;
        map.end()
    }
}

type Step<T> = Result<T, Located<TypeProblem>>;

const SHAPE: &str = "a tagged value like {\"int\": 1}";

fn decode_at(json: &Json) -> Step<CValue> {
    let (tag, body) = match json {
        Json::Object(object) if object.len() == 1 => object.iter().next().expect("one entry"),
        other => return Err(found(SHAPE, other)),
    };
    Ok(match (tag.as_str(), body) {
        ("string", Json::String(text)) => CValue::String(text.clone()),
        ("int", body) => CValue::Int(int_from_json(body)?),
        ("float", body) => CValue::Float(float_from_json(body)?),
        ("bool", Json::Bool(b)) => CValue::Bool(*b),
        ("list", Json::Array(items)) => CValue::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| decode_at(item).within(|| Segment::Index(i)))
                .collect::<Step<_>>()?,
        ),
        ("map", Json::Array(pairs)) => CValue::Map(
            pairs
                .iter()
                .enumerate()
                .map(|(i, pair)| match pair {
                    Json::Array(kv) if kv.len() == 2 => Ok((
                        decode_at(&kv[0]).within(|| Segment::MapKey(i))?,
                        decode_at(&kv[1]).within(|| Segment::MapValue(i))?,
                    )),
                    other => Err(found("a [key, value] pair", other).within(Segment::Index(i))),
                })
                .collect::<Step<_>>()?,
        ),
        ("product", Json::Object(fields)) => CValue::Product(
            fields
                .iter()
                .map(|(name, value)| {
                    Ok((
                        name.clone(),
                        decode_at(value).within(|| Segment::Field(name.clone()))?,
                    ))
                })
                .collect::<Step<_>>()?,
        ),
        ("union", Json::Object(variant)) if variant.len() == 1 => {
            let (name, value) = variant.iter().next().expect("one entry");
            CValue::union(
                name.clone(),
                decode_at(value).within(|| Segment::Field(name.clone()))?,
            )
        }
        ("optional", Json::Null) => CValue::none(),
        ("optional", value) => CValue::some(decode_at(value)?),
        (tag @ ("string" | "bool" | "list" | "map" | "product" | "union"), other) => {
            return Err(found(format!("the body of a {tag:?} value"), other))
        }
        (tag, _) => {
            return Err(Located::here(TypeProblem::Malformed(format!(
            "unknown tag {tag:?} (string, int, float, bool, list, map, product, union, optional)"
        ))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented shapes are what the encoder writes.
    /// Steps: encode a value with every kind and compare the text.
    #[test]
    fn writes_the_documented_shapes() {
        let value = CValue::product([
            ("s", CValue::String("Ada".into())),
            ("big", CValue::Int(i64::MAX)),
            ("f", CValue::Float(f64::NEG_INFINITY)),
            ("l", CValue::List(vec![CValue::Bool(true)])),
            ("m", CValue::Map(vec![(CValue::Int(1), CValue::none())])),
            ("u", CValue::union("circle", CValue::Float(2.5))),
        ]);
        assert_eq!(
            encode_tagged_string(&value),
            concat!(
                r#"{"product":{"s":{"string":"Ada"},"big":{"int":"9223372036854775807"},"#,
                r#""f":{"float":"-Infinity"},"l":{"list":[{"bool":true}]},"#,
                r#""m":{"map":[[{"int":1},{"optional":null}]]},"u":{"union":{"circle":{"float":2.5}}}}}"#
            )
        );
        assert_eq!(
            decode_tagged_str(&encode_tagged_string(&value)).unwrap(),
            value
        );
    }

    /// Malformed documents are typed errors with a path.
    /// Steps: decode a table of bad documents and compare the messages.
    #[test]
    fn malformed_documents_are_typed_errors() {
        let cases = [
            ("5", "$: expected a tagged value like {\"int\": 1}, found JSON number"),
            (r#"{"int":1,"bool":true}"#, "$: expected a tagged value like {\"int\": 1}, found JSON object"),
            (r#"{"list":[{"nope":1}]}"#, "$[0]: unknown tag \"nope\" (string, int, float, bool, list, map, product, union, optional)"),
            (r#"{"string":1}"#, "$: expected the body of a \"string\" value, found JSON number"),
            (r#"{"map":[[{"int":1}]]}"#, "$[0]: expected a [key, value] pair, found JSON array"),
        ];
        for (text, expected) in cases {
            assert_eq!(
                decode_tagged_str(text).unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
    }
}
