//! Reads protobuf `Value` bytes straight into a [`CValue`], without
//! building a message tree first.
//!
//! Each message is read field by field from a slice that holds exactly its
//! body. Unknown fields are skipped, as protobuf requires; a known field
//! with the wrong wire type, a truncated field or invalid UTF-8 is a
//! [`CodecError::Protobuf`]; a missing required part is a
//! [`CodecError::Missing`] with its path.

use super::{tag, MAX_DEPTH};
use crate::errors::CodecError;
use crate::path::{Located, Segment};
use crate::CValue;
use prost::encoding::WireType;

/// Decodes the bytes of a protobuf `Value` message.
pub fn decode(bytes: &[u8]) -> Result<CValue, CodecError> {
    let mut body = bytes;
    read_value(&mut body, 0).map_err(|located| {
        let located = *located;
        let path = located.path();
        match located.error {
            Fault::Malformed(message) => CodecError::Protobuf(message),
            Fault::Missing(what) => CodecError::Missing {
                path,
                what: what.to_string(),
            },
        }
    })
}

/// What went wrong at one place; [`decode`] adds the path.
enum Fault {
    Malformed(String),
    Missing(&'static str),
}

/// Errors are boxed so that the success path moves small results.
type Step<T> = Result<T, Box<Located<Fault>>>;

fn malformed(message: impl Into<String>) -> Box<Located<Fault>> {
    Box::new(Located::here(Fault::Malformed(message.into())))
}

fn missing(what: &'static str) -> Box<Located<Fault>> {
    Box::new(Located::here(Fault::Missing(what)))
}

/// Adds a path segment to a boxed error.
fn within<T>(step: Step<T>, segment: impl FnOnce() -> Segment) -> Step<T> {
    step.map_err(|located| Box::new(located.within(segment())))
}

/// Reads a base-128 varint, as protobuf writes them (at most ten bytes).
#[inline]
fn read_varint(body: &mut &[u8]) -> Step<u64> {
    let mut value = 0u64;
    for (i, byte) in body.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *body = &body[i + 1..];
            return Ok(value);
        }
    }
    Err(malformed(if body.len() < 10 {
        "buffer underflow"
    } else {
        "invalid varint"
    }))
}

/// One field: its number and the bytes or number it carries.
enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Delimited(u32, &'a [u8]),
}

#[inline]
/// Reads the next field of a message body, skipping fixed32 fields (no
/// field of these messages has that type, so they are unknown ones).
fn next_field<'a>(body: &mut &'a [u8]) -> Step<Option<Field<'a>>> {
    loop {
        if body.is_empty() {
            return Ok(None);
        }
        let key = read_varint(body)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number out of range"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let wire_type = WireType::try_from(key & 0x7).map_err(|e| malformed(e.to_string()))?;
        return Ok(Some(match wire_type {
            WireType::Varint => Field::Varint(number, read_varint(body)?),
            WireType::SixtyFourBit => Field::Fixed64(
                number,
                u64::from_le_bytes(take(body, 8)?.try_into().expect("8 bytes")),
            ),
            WireType::LengthDelimited => {
                let len = read_varint(body)?;
                let len = usize::try_from(len).map_err(|_| malformed("length overflows"))?;
                Field::Delimited(number, take(body, len)?)
            }
            WireType::ThirtyTwoBit => {
                take(body, 4)?;
                continue;
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(malformed("groups are not supported"))
            }
        }));
    }
}

fn take<'a>(body: &mut &'a [u8], len: usize) -> Step<&'a [u8]> {
    if body.len() < len {
        return Err(malformed("buffer underflow"));
    }
    let (head, tail) = body.split_at(len);
    *body = tail;
    Ok(head)
}

fn utf8(bytes: &[u8]) -> Step<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not valid UTF-8"))
}

fn wrong_wire_type(number: u32) -> Box<Located<Fault>> {
    malformed(format!("field {number} has the wrong wire type"))
}

/// Reads a `Value` body. The last kind field wins, as for any oneof.
fn read_value(body: &mut &[u8], depth: usize) -> Step<CValue> {
    if depth >= MAX_DEPTH {
        return Err(malformed("values nest too deeply"));
    }
    let mut value = None;
    while let Some(field) = next_field(body)? {
        value = Some(match field {
            Field::Delimited(tag::STRING, bytes) => CValue::String(utf8(bytes)?),
            Field::Varint(tag::INT, n) => CValue::Int(((n >> 1) as i64) ^ -((n & 1) as i64)),
            Field::Fixed64(tag::FLOAT, bits) => CValue::Float(f64::from_bits(bits)),
            Field::Varint(tag::BOOL, n) => CValue::Bool(n != 0),
            Field::Delimited(tag::LIST, mut bytes) => read_list(&mut bytes, depth)?,
            Field::Delimited(tag::MAP, mut bytes) => read_map(&mut bytes, depth)?,
            Field::Delimited(tag::PRODUCT, mut bytes) => read_product(&mut bytes, depth)?,
            Field::Delimited(tag::UNION, bytes) => read_union(bytes, depth)?,
            Field::Delimited(tag::OPTIONAL, mut bytes) => read_optional(&mut bytes, depth)?,
            Field::Varint(number, _) | Field::Fixed64(number, _) | Field::Delimited(number, _)
                if (tag::STRING..=tag::OPTIONAL).contains(&number) =>
            {
                return Err(wrong_wire_type(number))
            }
            _ => continue,
        });
    }
    value.ok_or_else(|| missing("kind"))
}

/// Reads a nested `Value` field's bytes.
fn nested_value(mut bytes: &[u8], depth: usize) -> Step<CValue> {
    read_value(&mut bytes, depth + 1)
}

/// The fields of a `MapEntry` (two values), `NamedValue` or `UnionValue`
/// (a name and a value), kept as bytes until the caller knows the path.
struct Pair<'a> {
    key: Option<&'a [u8]>,
    name: String,
    value: Option<&'a [u8]>,
}

/// Reads a pair message; field 1 is a value when `key_is_value`, a name
/// otherwise; field 2 is always a value.
fn read_pair<'a>(mut body: &'a [u8], key_is_value: bool) -> Step<Pair<'a>> {
    let mut pair = Pair {
        key: None,
        name: String::new(),
        value: None,
    };
    while let Some(field) = next_field(&mut body)? {
        match field {
            Field::Delimited(1, bytes) if key_is_value => pair.key = Some(bytes),
            Field::Delimited(1, bytes) => pair.name = utf8(bytes)?,
            Field::Delimited(2, bytes) => pair.value = Some(bytes),
            Field::Varint(n @ (1 | 2), _) | Field::Fixed64(n @ (1 | 2), _) => {
                return Err(wrong_wire_type(n))
            }
            _ => {}
        }
    }
    Ok(pair)
}

/// Decodes a required nested value, or reports it missing at `segment`.
fn required(
    bytes: Option<&[u8]>,
    what: &'static str,
    depth: usize,
    segment: impl FnOnce() -> Segment,
) -> Step<CValue> {
    match bytes {
        Some(bytes) => within(nested_value(bytes, depth), segment),
        None => within(Err(missing(what)), segment),
    }
}

/// Reads the repeated field 1 of a message, each occurrence with `read`.
fn repeated<T>(body: &mut &[u8], mut read: impl FnMut(&[u8], usize) -> Step<T>) -> Step<Vec<T>> {
    let mut items = Vec::new();
    while let Some(field) = next_field(body)? {
        match field {
            Field::Delimited(1, bytes) => items.push(read(bytes, items.len())?),
            Field::Varint(1, _) | Field::Fixed64(1, _) => return Err(wrong_wire_type(1)),
            _ => {}
        }
    }
    Ok(items)
}

fn read_list(body: &mut &[u8], depth: usize) -> Step<CValue> {
    repeated(body, |bytes, i| {
        within(nested_value(bytes, depth), || Segment::Index(i))
    })
    .map(CValue::List)
}

fn read_map(body: &mut &[u8], depth: usize) -> Step<CValue> {
    repeated(body, |bytes, i| {
        let pair = read_pair(bytes, true)?;
        Ok((
            required(pair.key, "key", depth, || Segment::MapKey(i))?,
            required(pair.value, "value", depth, || Segment::MapValue(i))?,
        ))
    })
    .map(CValue::Map)
}

fn read_product(body: &mut &[u8], depth: usize) -> Step<CValue> {
    repeated(body, |bytes, _| {
        let pair = read_pair(bytes, false)?;
        let value = required(pair.value, "value", depth, || {
            Segment::Field(pair.name.clone())
        })?;
        Ok((pair.name, value))
    })
    .map(CValue::Product)
}

fn read_union(body: &[u8], depth: usize) -> Step<CValue> {
    let pair = read_pair(body, false)?;
    let value = required(pair.value, "value", depth, || {
        Segment::Field(pair.name.clone())
    })?;
    Ok(CValue::Union(pair.name, Box::new(value)))
}

fn read_optional(body: &mut &[u8], depth: usize) -> Step<CValue> {
    // A repeated occurrence of the field replaces the earlier one.
    let mut present = repeated(body, |bytes, _| nested_value(bytes, depth))?;
    Ok(CValue::Optional(present.pop().map(Box::new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Malformed bytes and missing parts give typed errors with paths.
    /// Steps: decode a table of hand-made byte strings.
    #[test]
    fn malformed_bytes_are_typed_errors() {
        let cases: [(&[u8], &str); 7] = [
            (&[], "$: kind is missing"),
            (&[0xff, 0xff], "invalid protobuf value: buffer underflow"),
            (
                &[0x0a, 0x05, b'a'],
                "invalid protobuf value: buffer underflow",
            ),
            (
                &[0x0a, 0x01, 0xff],
                "invalid protobuf value: a string is not valid UTF-8",
            ),
            (
                &[0x08, 0x01],
                "invalid protobuf value: field 1 has the wrong wire type",
            ),
            // A list holding an empty value.
            (&[0x2a, 0x02, 0x0a, 0x00], "$[0]: kind is missing"),
            // A product field named "a" without a value.
            (
                &[0x3a, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'a'],
                "$.a: value is missing",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                decode(bytes).unwrap_err().to_string(),
                expected,
                "{bytes:02x?}"
            );
        }
        // Unknown fields are skipped.
        assert_eq!(decode(&[0x50, 0x07, 0x20, 0x01]), Ok(CValue::Bool(true)));
    }

    /// Nesting beyond the limit is refused, not a stack overflow.
    /// Steps: wrap a value in optionals past the limit and decode.
    #[test]
    fn nesting_is_bounded() {
        let mut value = CValue::Int(1);
        for _ in 0..MAX_DEPTH {
            value = CValue::some(value);
        }
        let err = decode(&super::super::encode(&value)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid protobuf value: values nest too deeply"
        );
    }
}
