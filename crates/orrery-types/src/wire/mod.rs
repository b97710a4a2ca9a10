//! The binary value codec: [`CValue`] <-> the protobuf `Value` message.
//!
//! This is the language-neutral wire form: a provider in any language reads
//! and writes it with its stock protobuf library. Every [`CValue`] (typed or
//! not) round-trips exactly, float bit patterns included.
//!
//! Two ways in and out, which agree (a property test holds them to it):
//! - [`encode`] / [`decode`] go straight between a value and bytes, with no
//!   intermediate message tree. [`encode`] writes exactly the bytes prost
//!   would write for [`to_pb`]'s message.
//! - [`to_pb`] / [`from_pb`] convert to and from the generated message, for
//!   values embedded in other messages (a call's input and output).
//!
//! Decoding never panics: nesting is bounded at [`MAX_DEPTH`] levels (as
//! prost bounds it), and a `Value` with no kind set, or a map entry, field
//! or variant without its value, is a [`crate::CodecError::Missing`]. When a
//! field appears twice in the bytes, the last one wins.

mod decode;
mod encode;
mod message;

pub use decode::decode;
pub use encode::encode;
pub use message::{from_pb, to_pb};

#[cfg(doc)]
use crate::CValue;

/// How deeply values may nest in the bytes, as in prost.
pub const MAX_DEPTH: usize = 100;

/// Field numbers of `Value`'s oneof, from `types.proto`.
mod tag {
    pub const STRING: u32 = 1;
    pub const INT: u32 = 2;
    pub const FLOAT: u32 = 3;
    pub const BOOL: u32 = 4;
    pub const LIST: u32 = 5;
    pub const MAP: u32 = 6;
    pub const PRODUCT: u32 = 7;
    pub const UNION: u32 = 8;
    pub const OPTIONAL: u32 = 9;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CValue;
    use prost::Message;

    /// The byte codec and prost agree on a sample of every kind, including
    /// defaults that proto3 omits (empty names, zero).
    /// Steps: encode directly and through prost; compare bytes; decode both ways.
    #[test]
    fn agrees_with_prost() {
        let value = CValue::List(vec![
            CValue::Int(0),
            CValue::Int(-1),
            CValue::String(String::new()),
            CValue::Float(-0.0),
            CValue::Bool(false),
            CValue::product([("", CValue::none())]),
            CValue::union(
                "",
                CValue::Map(vec![(CValue::Int(1), CValue::some(CValue::Bool(true)))]),
            ),
            CValue::Product(vec![]),
        ]);
        let bytes = encode(&value);
        assert_eq!(bytes, to_pb(&value).encode_to_vec());
        assert_eq!(decode(&bytes), Ok(value.clone()));
        assert_eq!(
            from_pb(crate::pb::Value::decode(bytes.as_slice()).unwrap()),
            Ok(value)
        );
    }
}
