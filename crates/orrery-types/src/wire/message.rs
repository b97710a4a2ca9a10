//! [`CValue`] <-> the generated `pb::Value` message, for values embedded in
//! other messages. [`from_pb`] takes the message by value and moves its
//! strings and lists instead of copying them.

use crate::errors::CodecError;
use crate::path::{Located, Segment, WithinExt};
use crate::pb::{self, value::Kind};
use crate::CValue;

/// The protobuf message for a value.
pub fn to_pb(value: &CValue) -> pb::Value {
    let kind = match value {
        CValue::String(s) => Kind::StringValue(s.clone()),
        CValue::Int(i) => Kind::IntValue(*i),
        CValue::Float(f) => Kind::FloatValue(*f),
        CValue::Bool(b) => Kind::BoolValue(*b),
        CValue::List(items) => Kind::ListValue(pb::ListValue {
            elements: items.iter().map(to_pb).collect(),
        }),
        CValue::Map(entries) => Kind::MapValue(pb::MapValue {
            entries: entries
                .iter()
                .map(|(k, v)| pb::MapEntry {
                    key: Some(to_pb(k)),
                    value: Some(to_pb(v)),
                })
                .collect(),
        }),
        CValue::Product(fields) => Kind::ProductValue(pb::ProductValue {
            fields: fields
                .iter()
                .map(|(name, v)| pb::NamedValue {
                    name: name.clone(),
                    value: Some(to_pb(v)),
                })
                .collect(),
        }),
        CValue::Union(variant, inner) => Kind::UnionValue(Box::new(pb::UnionValue {
            variant: variant.clone(),
            value: Some(Box::new(to_pb(inner))),
        })),
        CValue::Optional(inner) => Kind::OptionalValue(Box::new(pb::OptionalValue {
            value: inner.as_deref().map(|v| Box::new(to_pb(v))),
        })),
    };
    pb::Value { kind: Some(kind) }
}

/// The value a protobuf message holds.
pub fn from_pb(value: pb::Value) -> Result<CValue, CodecError> {
    from_pb_at(value).map_err(|located| CodecError::Missing {
        path: located.path(),
        what: located.error.to_string(),
    })
}

type Step<T> = Result<T, Located<&'static str>>;

fn from_pb_at(value: pb::Value) -> Step<CValue> {
    let kind = value.kind.ok_or(Located::here("kind"))?;
    Ok(match kind {
        Kind::StringValue(s) => CValue::String(s),
        Kind::IntValue(i) => CValue::Int(i),
        Kind::FloatValue(f) => CValue::Float(f),
        Kind::BoolValue(b) => CValue::Bool(b),
        Kind::ListValue(list) => CValue::List(
            list.elements
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_pb_at(v).within(|| Segment::Index(i)))
                .collect::<Step<_>>()?,
        ),
        Kind::MapValue(map) => CValue::Map(
            map.entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| {
                    let key = required(entry.key, "key").within(|| Segment::MapKey(i))?;
                    let value = required(entry.value, "value").within(|| Segment::MapValue(i))?;
                    Ok((key, value))
                })
                .collect::<Step<_>>()?,
        ),
        Kind::ProductValue(product) => CValue::Product(
            product
                .fields
                .into_iter()
                .map(|field| {
                    let name = field.name;
                    let value =
                        required(field.value, "value").within(|| Segment::Field(name.clone()))?;
                    Ok((name, value))
                })
                .collect::<Step<_>>()?,
        ),
        Kind::UnionValue(union) => {
            let union = *union;
            let variant = union.variant;
            let value = required(union.value.map(|v| *v), "value")
                .within(|| Segment::Field(variant.clone()))?;
            CValue::Union(variant, Box::new(value))
        }
        Kind::OptionalValue(optional) => match optional.value {
            Some(inner) => CValue::some(from_pb_at(*inner)?),
            None => CValue::none(),
        },
    })
}

fn required(value: Option<pb::Value>, what: &'static str) -> Step<CValue> {
    match value {
        Some(value) => from_pb_at(value),
        None => Err(Located::here(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages with a missing part decode to a typed error naming the place.
    /// Steps: decode an empty message, a list with an empty element and a
    /// map entry without a value.
    #[test]
    fn missing_parts_are_typed_errors() {
        assert_eq!(
            from_pb(pb::Value { kind: None }).unwrap_err().to_string(),
            "$: kind is missing"
        );
        let list = pb::Value {
            kind: Some(Kind::ListValue(pb::ListValue {
                elements: vec![to_pb(&CValue::Int(1)), pb::Value { kind: None }],
            })),
        };
        assert_eq!(
            from_pb(list).unwrap_err().to_string(),
            "$[1]: kind is missing"
        );
        let map = pb::Value {
            kind: Some(Kind::MapValue(pb::MapValue {
                entries: vec![pb::MapEntry {
                    key: Some(to_pb(&CValue::Bool(true))),
                    value: None,
                }],
            })),
        };
        assert_eq!(
            from_pb(map).unwrap_err().to_string(),
            "$<value #0>: value is missing"
        );
    }
}
