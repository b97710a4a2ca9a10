//! The typed JSON form: plain JSON whose reading is guided by a [`CType`].
//!
//! A product is an object of its fields (`{"name":"Ada","age":36}`), a union
//! an object with one key, the variant (`{"circle":2.5}`), a list an array,
//! and scalars are JSON scalars; see the parent module for numbers, maps and
//! optionals. On input, an absent optional field of a product reads as
//! absent, and the fields may come in any order; on output they follow the
//! type's order. A field or map key given twice is an error.

use super::numbers::{float_from_json, int_from_json, serialize_float, serialize_int};
use crate::check::{check, finish};
use crate::cvalue::first_duplicate_key;
use crate::errors::{CodecError, TypeProblem};
use crate::path::{Located, Segment};
use crate::{CType, CValue};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;
use std::cell::RefCell;
use std::fmt;

/// Encodes a value of type `ty` as a JSON tree. Fails with
/// [`CodecError::Type`] if the value does not have that type.
pub fn encode(value: &CValue, ty: &CType) -> Result<Json, CodecError> {
    check(value, ty)?;
    serde_json::to_value(Typed { value, ty }).map_err(|e| CodecError::Json(e.to_string()))
}

/// Encodes a value of type `ty` as compact JSON text.
pub fn encode_string(value: &CValue, ty: &CType) -> Result<String, CodecError> {
    check(value, ty)?;
    serde_json::to_string(&Typed { value, ty }).map_err(|e| CodecError::Json(e.to_string()))
}

/// Decodes a JSON tree as a value of type `ty`.
pub fn decode(json: &Json, ty: &CType) -> Result<CValue, CodecError> {
    let fault = Fault::default();
    let result = TypedSeed { ty, fault: &fault }.deserialize(json);
    finish_decode(result, fault)
}

/// Decodes JSON text as a value of type `ty`, in one pass with no
/// intermediate tree.
pub fn decode_str(text: &str, ty: &CType) -> Result<CValue, CodecError> {
    let fault = Fault::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = TypedSeed { ty, fault: &fault }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    finish_decode(result, fault)
}

/// Turns the decoder's outcome into the codec's: a type problem recorded
/// in `fault` wins over the serde error that carried it out.
fn finish_decode(
    result: Result<CValue, serde_json::Error>,
    fault: Fault,
) -> Result<CValue, CodecError> {
    match (result, fault.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(located)) => Err(CodecError::Type(finish(located))),
        (Err(e), None) => Err(CodecError::Json(e.to_string())),
    }
}

/// A value and its (already checked) type, serialized in the typed form.
struct Typed<'a> {
    value: &'a CValue,
    ty: &'a CType,
}

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.ty, self.value) {
            (CType::String, CValue::String(text)) => s.serialize_str(text),
            (CType::Int, CValue::Int(i)) => serialize_int(*i, s),
            (CType::Float, CValue::Float(f)) => serialize_float(*f, s),
            (CType::Bool, CValue::Bool(b)) => s.serialize_bool(*b),
            (CType::List(element), CValue::List(items)) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Typed { value, ty: element })?;
                }
                seq.end()
            }
            (CType::Map(key_ty, value_ty), CValue::Map(entries)) => {
                if **key_ty == CType::String {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    for (key, value) in entries {
                        map.serialize_entry(
                            &Typed {
                                value: key,
                                ty: key_ty,
                            },
                            &Typed {
                                value,
                                ty: value_ty,
                            },
                        )?;
                    }
                    map.end()
                } else {
                    let mut seq = s.serialize_seq(Some(entries.len()))?;
                    for (key, value) in entries {
                        seq.serialize_element(&(
                            Typed {
                                value: key,
                                ty: key_ty,
                            },
                            Typed {
                                value,
                                ty: value_ty,
                            },
                        ))?;
                    }
                    seq.end()
                }
            }
            (CType::Product(fields), CValue::Product(values)) => {
                let mut map = s.serialize_map(Some(values.len()))?;
                for ((name, value), (_, ty)) in values.iter().zip(fields) {
                    map.serialize_entry(name, &Typed { value, ty })?;
                }
                map.end()
            }
            (CType::Union(variants), CValue::Union(variant, value)) => {
                let ty = variants
                    .iter()
                    .find_map(|(name, ty)| (name == variant).then_some(ty))
                    .ok_or_else(|| S::Error::custom("unknown variant"))?;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(variant, &Typed { value, ty })?;
                map.end()
            }
            (CType::Optional(_), CValue::Optional(None)) => s.serialize_unit(),
            (CType::Optional(inner_ty), CValue::Optional(Some(value))) => {
                let inner = Typed {
                    value,
                    ty: inner_ty,
                };
                if matches!(**inner_ty, CType::Optional(_)) {
                    let mut seq = s.serialize_seq(Some(1))?;
                    seq.serialize_element(&inner)?;
                    seq.end()
                } else {
                    inner.serialize(s)
                }
            }
            // `encode` checks the value against the type first.
            (ty, value) => Err(S::Error::custom(format!(
                "expected {ty}, found {}",
                value.kind_name()
            ))),
        }
    }
}

/// Where the decoder keeps the type problem it met, with its path. Serde
/// errors carry only text, so a visitor that meets a problem records it
/// here and returns a placeholder serde error; each level on the way out
/// adds its path segment to the recorded problem.
type Fault = RefCell<Option<Located<TypeProblem>>>;

/// Records `problem` and returns the serde error that unwinds the decode.
fn fail<E: de::Error>(fault: &Fault, problem: Located<TypeProblem>) -> E {
    *fault.borrow_mut() = Some(problem);
    E::custom("type error")
}

/// Adds `segment` to the recorded problem, if the error carries one.
fn within<T, E>(
    fault: &Fault,
    result: Result<T, E>,
    segment: impl FnOnce() -> Segment,
) -> Result<T, E> {
    if result.is_err() {
        let mut slot = fault.borrow_mut();
        if let Some(located) = slot.take() {
            *slot = Some(located.within(segment()));
        }
    }
    result
}

/// Decodes one value of type `ty`.
#[derive(Clone, Copy)]
struct TypedSeed<'a> {
    ty: &'a CType,
    fault: &'a Fault,
}

impl<'a> TypedSeed<'a> {
    fn with(self, ty: &'a CType) -> TypedSeed<'a> {
        TypedSeed {
            ty,
            fault: self.fault,
        }
    }

    fn fail<E: de::Error>(self, problem: Located<TypeProblem>) -> E {
        fail(self.fault, problem)
    }

    /// The JSON found is of the wrong kind for the type.
    fn unexpected<E: de::Error>(self, found: &str) -> E {
        let expected = match self.ty {
            CType::Optional(inner) if matches!(**inner, CType::Optional(_)) => {
                format!("null or a one-element array for {}", self.ty)
            }
            ty => ty.to_string(),
        };
        self.fail(Located::here(TypeProblem::Mismatch {
            expected,
            found: found.to_string(),
        }))
    }

    /// For an optional whose inner type is not optional, a non-null JSON
    /// value is the inner value: decode it with the inner type.
    fn present_inner(self) -> Option<TypedSeed<'a>> {
        match self.ty {
            CType::Optional(inner) if !matches!(**inner, CType::Optional(_)) => {
                Some(self.with(inner))
            }
            _ => None,
        }
    }

    fn int<E: de::Error>(self, json: Json) -> Result<CValue, E> {
        int_from_json(&json)
            .map(CValue::Int)
            .map_err(|p| self.fail(p))
    }

    fn float<E: de::Error>(self, json: Json) -> Result<CValue, E> {
        float_from_json(&json)
            .map(CValue::Float)
            .map_err(|p| self.fail(p))
    }

    /// A JSON number, for whichever of Int or Float the type asks.
    fn number<E: de::Error>(self, json: Json) -> Result<CValue, E> {
        match self.ty {
            CType::Int => self.int(json),
            CType::Float => self.float(json),
            _ => match self.present_inner() {
                Some(inner) => inner.number(json).map(CValue::some),
                None => Err(self.unexpected("JSON number")),
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for TypedSeed<'_> {
    type Value = CValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<CValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TypedSeed<'_> {
    type Value = CValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON value of type {}", self.ty)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<CValue, E> {
        match (self.ty, self.present_inner()) {
            (CType::Bool, _) => Ok(CValue::Bool(b)),
            (_, Some(inner)) => inner.visit_bool(b).map(CValue::some),
            _ => Err(self.unexpected("JSON boolean")),
        }
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<CValue, E> {
        self.number(Json::from(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<CValue, E> {
        self.number(Json::from(u))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<CValue, E> {
        self.number(Json::from(f))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<CValue, E> {
        self.visit_string(text.to_string())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<CValue, E> {
        match (self.ty, self.present_inner()) {
            (CType::String, _) => Ok(CValue::String(text)),
            (CType::Int, _) => self.int(Json::String(text)),
            (CType::Float, _) => self.float(Json::String(text)),
            (_, Some(inner)) => inner.visit_string(text).map(CValue::some),
            _ => Err(self.unexpected("JSON string")),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<CValue, E> {
        match self.ty {
            CType::Optional(_) => Ok(CValue::none()),
            _ => Err(self.unexpected("JSON null")),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<CValue, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CValue, A::Error> {
        let fault = self.fault;
        match self.ty {
            CType::List(element) => {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                loop {
                    let i = items.len();
                    match within(fault, seq.next_element_seed(self.with(element)), || {
                        Segment::Index(i)
                    })? {
                        Some(item) => items.push(item),
                        None => return Ok(CValue::List(items)),
                    }
                }
            }
            CType::Map(key_ty, value_ty) if **key_ty != CType::String => {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                loop {
                    let i = entries.len();
                    let pair = PairSeed {
                        key: self.with(key_ty),
                        value: self.with(value_ty),
                        index: i,
                    };
                    match within(fault, seq.next_element_seed(pair), || Segment::Index(i))? {
                        Some(entry) => entries.push(entry),
                        None => break,
                    }
                }
                match first_duplicate_key(entries.iter().map(|(key, _)| key)) {
                    Some(i) => Err(self
                        .fail(Located::here(TypeProblem::DuplicateKey).within(Segment::MapKey(i)))),
                    None => Ok(CValue::Map(entries)),
                }
            }
            CType::Optional(inner) if matches!(**inner, CType::Optional(_)) => {
                let present = seq.next_element_seed(self.with(inner))?;
                match (present, seq.next_element::<de::IgnoredAny>()?) {
                    (Some(value), None) => Ok(CValue::some(value)),
                    _ => Err(self.unexpected("a JSON array of another length")),
                }
            }
            _ => match self.present_inner() {
                Some(inner) => inner.visit_seq(seq).map(CValue::some),
                None => Err(self.unexpected("JSON array")),
            },
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CValue, A::Error> {
        let fault = self.fault;
        match self.ty {
            CType::Product(fields) => {
                let mut values: Vec<Option<CValue>> = vec![None; fields.len()];
                while let Some(index) = map.next_key_seed(FieldIndex {
                    names: fields,
                    fault,
                })? {
                    let (name, ty) = &fields[index];
                    let value = within(fault, map.next_value_seed(self.with(ty)), || {
                        Segment::Field(name.clone())
                    })?;
                    if values[index].replace(value).is_some() {
                        return Err(self.fail(Located::here(TypeProblem::Malformed(format!(
                            "field {name:?} is given twice"
                        )))));
                    }
                }
                let mut out = Vec::with_capacity(fields.len());
                for ((name, ty), value) in fields.iter().zip(values) {
                    let value = match (value, ty) {
                        (Some(value), _) => value,
                        (None, CType::Optional(_)) => CValue::none(),
                        (None, _) => {
                            return Err(
                                self.fail(Located::here(TypeProblem::MissingField(name.clone())))
                            )
                        }
                    };
                    out.push((name.clone(), value));
                }
                Ok(CValue::Product(out))
            }
            CType::Union(variants) => {
                let one_key = || {
                    Located::here(TypeProblem::Malformed(
                        "a union is an object with exactly one key, the variant".into(),
                    ))
                };
                let Some(index) = map.next_key_seed(VariantIndex {
                    names: variants,
                    fault,
                })?
                else {
                    return Err(self.fail(one_key()));
                };
                let (name, ty) = &variants[index];
                let value = within(fault, map.next_value_seed(self.with(ty)), || {
                    Segment::Field(name.clone())
                })?;
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(self.fail(one_key()));
                }
                Ok(CValue::union(name.clone(), value))
            }
            CType::Map(key_ty, value_ty) if **key_ty == CType::String => {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
                while let Some(key) = map.next_key::<String>()? {
                    let i = entries.len();
                    let value = within(fault, map.next_value_seed(self.with(value_ty)), || {
                        Segment::MapValue(i)
                    })?;
                    entries.push((CValue::String(key), value));
                }
                match first_duplicate_key(entries.iter().map(|(key, _)| key)) {
                    Some(i) => Err(self
                        .fail(Located::here(TypeProblem::DuplicateKey).within(Segment::MapKey(i)))),
                    None => Ok(CValue::Map(entries)),
                }
            }
            _ => match self.present_inner() {
                Some(inner) => inner.visit_map(map).map(CValue::some),
                None => Err(self.unexpected("JSON object")),
            },
        }
    }
}

/// Decodes one `[key, value]` pair of a map with non-string keys.
struct PairSeed<'a> {
    key: TypedSeed<'a>,
    value: TypedSeed<'a>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for PairSeed<'_> {
    type Value = (CValue, CValue);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PairSeed<'_> {
    type Value = (CValue, CValue);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [key, value] pair")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let fault = self.key.fault;
        let i = self.index;
        let key = within(fault, seq.next_element_seed(self.key), || {
            Segment::MapKey(i)
        })?;
        let value = within(fault, seq.next_element_seed(self.value), || {
            Segment::MapValue(i)
        })?;
        match (key, value, seq.next_element::<de::IgnoredAny>()?) {
            (Some(key), Some(value), None) => Ok((key, value)),
            _ => Err(fail(fault, mismatch_pair("a JSON array of another length"))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(fail(self.key.fault, mismatch_pair("JSON object")))
    }
}

fn mismatch_pair(found: &str) -> Located<TypeProblem> {
    Located::here(TypeProblem::Mismatch {
        expected: "a [key, value] pair".into(),
        found: found.into(),
    })
}

/// Reads an object key as the index of a declared product field.
struct FieldIndex<'a> {
    names: &'a [(String, CType)],
    fault: &'a Fault,
}

/// Reads an object key as the index of a declared union variant.
struct VariantIndex<'a> {
    names: &'a [(String, CType)],
    fault: &'a Fault,
}

macro_rules! key_index_seed {
    ($seed:ident, $problem:expr) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_> {
            type Value = usize;

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
                deserializer.deserialize_str(self)
            }
        }

        impl<'de> Visitor<'de> for $seed<'_> {
            type Value = usize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a declared name")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
                match self.names.iter().position(|(name, _)| name == key) {
                    Some(index) => Ok(index),
                    None => Err(fail(self.fault, Located::here(($problem)(key.to_string())))),
                }
            }
        }
    };
}

key_index_seed!(FieldIndex, |found| TypeProblem::UnexpectedField {
    found,
    expected: "one of the declared fields".into()
});
key_index_seed!(VariantIndex, TypeProblem::UnknownVariant);

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> CType {
        CType::product([
            ("name", CType::String),
            ("age", CType::Int),
            ("nick", CType::optional(CType::String)),
        ])
    }

    /// A product reads from plain JSON; an absent optional field reads as
    /// absent; output follows the type's field order.
    /// Steps: decode `{"age":36,"name":"Ada"}`, compare the value, encode it.
    #[test]
    fn product_reads_plain_json() {
        let value = decode_str(r#"{"age":36,"name":"Ada"}"#, &person()).unwrap();
        assert_eq!(
            value,
            CValue::product([
                ("name", CValue::String("Ada".into())),
                ("age", CValue::Int(36)),
                ("nick", CValue::none()),
            ])
        );
        assert_eq!(
            encode_string(&value, &person()).unwrap(),
            r#"{"name":"Ada","age":36,"nick":null}"#
        );
    }

    /// Bad JSON input gives typed errors with paths.
    /// Steps: decode a table of wrong inputs and compare the messages.
    #[test]
    fn bad_input_is_a_typed_error() {
        let cases = [
            (r#"{"name":"Ada"}"#, person(), "$: missing field \"age\""),
            (
                r#"{"name":"Ada","age":"x"}"#,
                person(),
                "$.age: \"x\" is not a decimal integer",
            ),
            (
                r#"{"name":1,"age":1}"#,
                person(),
                "$.name: expected String, found JSON number",
            ),
            (
                r#"{"name":"a","age":1,"zzz":1}"#,
                person(),
                "$: unexpected field \"zzz\" (expected one of the declared fields)",
            ),
            (
                "18446744073709551615",
                CType::Int,
                "$: integer 18446744073709551615 is out of range",
            ),
            ("1.5", CType::Int, "$: expected an integer, found 1.5"),
            (
                r#"{"a":1,"b":2}"#,
                CType::union([("a", CType::Int)]),
                "$: a union is an object with exactly one key, the variant",
            ),
            (
                "[[1,true],[1,false]]",
                CType::map(CType::Int, CType::Bool),
                "$<key #1>: duplicate map key",
            ),
            (
                "5",
                CType::optional(CType::optional(CType::Int)),
                "$: expected null or a one-element array for Optional<Optional<Int>>, found JSON number",
            ),
            (r#"{"b":1,"b":2}"#, CType::map(CType::String, CType::Int), "$<key #1>: duplicate map key"),
            (r#"{"name":"a","age":1,"age":2}"#, person(), "$: field \"age\" is given twice"),
            (
                r#"{"items":[1,[2]]}"#,
                CType::product([("items", CType::list(CType::list(CType::Int)))]),
                "$.items[0]: expected List<Int>, found JSON number",
            ),
            (
                "[[1,true,3]]",
                CType::map(CType::Int, CType::Bool),
                "$[0]: expected a [key, value] pair, found a JSON array of another length",
            ),
        ];
        for (text, ty, expected) in cases {
            assert_eq!(
                decode_str(text, &ty).unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
        assert!(matches!(
            decode_str("[1,", &CType::list(CType::Int)),
            Err(CodecError::Json(_))
        ));
        assert!(matches!(
            decode_str("1 x", &CType::Int),
            Err(CodecError::Json(_))
        ));
    }

    /// Encoding a value against a type it does not have is refused.
    /// Steps: encode an Int as a String.
    #[test]
    fn encode_checks_the_type() {
        let err = encode_string(&CValue::Int(1), &CType::String).unwrap_err();
        assert_eq!(err.to_string(), "$: expected String, found Int");
    }
}
