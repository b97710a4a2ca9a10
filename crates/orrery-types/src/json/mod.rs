//! The JSON value codecs, for people and the CLI.
//!
//! Two forms:
//! - **typed** ([`typed`]): plain JSON guided by the value's type, e.g.
//!   `{"name":"Ada","age":36}` for a product. This is what `orrery exec
//!   --input` reads and prints.
//! - **self-describing** ([`tagged`]): every value names its kind, e.g.
//!   `{"product":{"name":{"string":"Ada"}}}`, for when no type is at hand
//!   (logs, watch output, debugging).
//!
//! Choices both forms share, each of which round-trips:
//! - **Floats**: finite floats are JSON numbers written in their shortest
//!   exact form (`-0.0` keeps its sign); NaN, infinity and minus infinity are
//!   the strings `"NaN"`, `"Infinity"` and `"-Infinity"`. NaN payloads are not
//!   kept (all NaNs are one value, see [`crate::CValue`]). A float may be read
//!   from any JSON number.
//! - **Integers** within ±(2^53 - 1) are JSON numbers; beyond that they are
//!   decimal strings (`"9007199254740993"`), so JavaScript readers never lose
//!   digits. Both are accepted on input.
//! - **Maps** whose key type is `String` are JSON objects (entry order kept);
//!   maps with any other key type are arrays of `[key, value]` pairs.
//! - **Optionals**: absent is `null`; present is the inner value, except
//!   that when the inner type is itself optional, a present value is wrapped
//!   in a one-element array: for `Optional<Optional<Int>>`, `null` is absent,
//!   `[null]` is present-but-absent and `[5]` is 5.
//!
//! Decoding never panics; serde_json bounds nesting at 128 levels. In an
//! object, a key given twice keeps its last value (serde_json's rule).

mod numbers;
pub mod tagged;
pub mod typed;

pub use tagged::{decode_tagged, decode_tagged_str, encode_tagged, encode_tagged_string};
pub use typed::{decode, decode_str, encode, encode_string};
