//! Writes a [`CValue`] as protobuf `Value` bytes without building a message.
//!
//! Protobuf prefixes every nested message with its length, so encoding runs
//! in two passes: [`measure`] records the body length of every nested
//! message in pre-order, then [`write_body`] writes the bytes, taking the
//! lengths in the same order. Both passes are linear in the value's size.

use super::tag;
use crate::CValue;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

/// Encodes a value as the bytes of a protobuf `Value` message.
pub fn encode(value: &CValue) -> Vec<u8> {
    let mut lengths = Vec::new();
    let total = measure(value, &mut lengths);
    let mut out = Vec::with_capacity(total);
    let mut lengths = lengths.into_iter();
    // The top-level message has no length prefix: skip its own length.
    lengths.next();
    write_body(value, &mut lengths, &mut out);
    out
}

/// The size of a length-delimited field with tag < 16 and a body of `n` bytes.
fn delimited(n: usize) -> usize {
    1 + encoded_len_varint(n as u64) + n
}

/// The size of a proto3 string field that is omitted when empty.
fn optional_string(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited(s.len())
    }
}

/// Records the body length of `value`'s `Value` message and of every message
/// nested in it, in pre-order; returns the body length.
fn measure(value: &CValue, lengths: &mut Vec<usize>) -> usize {
    let own = lengths.len();
    lengths.push(0);
    let body = match value {
        CValue::String(s) => delimited(s.len()),
        CValue::Int(i) => 1 + encoded_len_varint(zigzag(*i)),
        CValue::Float(_) => 1 + 8,
        CValue::Bool(_) => 1 + 1,
        CValue::List(items) => nested(lengths, |lengths| {
            items
                .iter()
                .map(|item| delimited(measure(item, lengths)))
                .sum()
        }),
        CValue::Map(entries) => nested(lengths, |lengths| {
            entries
                .iter()
                .map(|(key, value)| {
                    delimited(nested_body(lengths, |lengths| {
                        delimited(measure(key, lengths)) + delimited(measure(value, lengths))
                    }))
                })
                .sum()
        }),
        CValue::Product(fields) => nested(lengths, |lengths| {
            fields
                .iter()
                .map(|(name, value)| {
                    delimited(nested_body(lengths, |lengths| {
                        optional_string(name) + delimited(measure(value, lengths))
                    }))
                })
                .sum()
        }),
        CValue::Union(variant, value) => nested(lengths, |lengths| {
            optional_string(variant) + delimited(measure(value, lengths))
        }),
        CValue::Optional(inner) => nested(lengths, |lengths| match inner {
            Some(inner) => delimited(measure(inner, lengths)),
            None => 0,
        }),
    };
    lengths[own] = body;
    body
}

/// Measures a nested message whose body `measure_body` computes; returns
/// the size of the field that holds it in `Value`'s oneof.
fn nested(lengths: &mut Vec<usize>, measure_body: impl FnOnce(&mut Vec<usize>) -> usize) -> usize {
    delimited(nested_body(lengths, measure_body))
}

/// Records a nested message's body length in its pre-order slot.
fn nested_body(
    lengths: &mut Vec<usize>,
    measure_body: impl FnOnce(&mut Vec<usize>) -> usize,
) -> usize {
    let slot = lengths.len();
    lengths.push(0);
    let body = measure_body(lengths);
    lengths[slot] = body;
    body
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

/// Writes a length-delimited field's key and length prefix.
fn open(tag: u32, lengths: &mut impl Iterator<Item = usize>, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(lengths.next().expect("measured") as u64, out);
}

fn write_string(tag: u32, s: &str, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Writes a nested `Value` field: key, length, body.
fn write_value(
    tag: u32,
    value: &CValue,
    lengths: &mut impl Iterator<Item = usize>,
    out: &mut Vec<u8>,
) {
    open(tag, lengths, out);
    write_body(value, lengths, out);
}

/// Writes the body of `value`'s `Value` message (its own length already taken).
fn write_body(value: &CValue, lengths: &mut impl Iterator<Item = usize>, out: &mut Vec<u8>) {
    match value {
        CValue::String(s) => write_string(tag::STRING, s, out),
        CValue::Int(i) => {
            encode_key(tag::INT, WireType::Varint, out);
            encode_varint(zigzag(*i), out);
        }
        CValue::Float(f) => {
            encode_key(tag::FLOAT, WireType::SixtyFourBit, out);
            out.extend_from_slice(&f.to_le_bytes());
        }
        CValue::Bool(b) => {
            encode_key(tag::BOOL, WireType::Varint, out);
            out.push(u8::from(*b));
        }
        CValue::List(items) => {
            open(tag::LIST, lengths, out);
            for item in items {
                write_value(1, item, lengths, out);
            }
        }
        CValue::Map(entries) => {
            open(tag::MAP, lengths, out);
            for (key, value) in entries {
                open(1, lengths, out);
                write_value(1, key, lengths, out);
                write_value(2, value, lengths, out);
            }
        }
        CValue::Product(fields) => {
            open(tag::PRODUCT, lengths, out);
            for (name, value) in fields {
                open(1, lengths, out);
                if !name.is_empty() {
                    write_string(1, name, out);
                }
                write_value(2, value, lengths, out);
            }
        }
        CValue::Union(variant, value) => {
            open(tag::UNION, lengths, out);
            if !variant.is_empty() {
                write_string(1, variant, out);
            }
            write_value(2, value, lengths, out);
        }
        CValue::Optional(inner) => {
            open(tag::OPTIONAL, lengths, out);
            if let Some(inner) = inner {
                write_value(1, inner, lengths, out);
            }
        }
    }
}
