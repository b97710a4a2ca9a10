//! The typed key-space machinery: a [`KeySpace`] names its sled tree, its key prefix and
//! its key and value types; [`KeyCodec`] turns keys into order-preserving bytes; values are
//! bincode. [`Space`] gives typed access to a tree (and `staged.rs` to writes staged on
//! one). The key spaces themselves are all listed in `key_spaces.rs`.

use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::RangeBounds;

use bincode::Options;
use orrery_types::cmd::ClientRequestId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::CodecError;
use crate::errors::StoreError;

/// The sled trees of a store. Several key spaces may share a tree; their prefixes keep them
/// apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TreeName {
    /// The data-version header.
    Meta,
    /// Raft log entries.
    Log,
    /// Vote, committed and last-purged log ids.
    LogMeta,
    /// Everything apply writes; one transaction per entry spans only this tree.
    StateMachine,
    /// The current snapshot.
    Snapshot,
}

impl TreeName {
    /// The sled tree name.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TreeName::Meta => "meta",
            TreeName::Log => "log",
            TreeName::LogMeta => "log_meta",
            TreeName::StateMachine => "sm",
            TreeName::Snapshot => "snapshot",
        }
    }
}

/// A key type with an order-preserving byte encoding: keys sort in sled as the values sort.
pub(crate) trait KeyCodec: Sized {
    /// Appends the key's bytes to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);

    /// Reads a key from exactly `bytes`; `Err` carries a reason for a human.
    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str>;
}

/// For key spaces that hold one value: the key is the prefix alone.
impl KeyCodec for () {
    fn encode_into(&self, _out: &mut Vec<u8>) {}

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err("unexpected bytes after the prefix")
        }
    }
}

/// Big-endian, so that log indexes sort numerically.
impl KeyCodec for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        let array: [u8; 8] = bytes.try_into().map_err(|_| "expected 8 bytes")?;
        Ok(u64::from_be_bytes(array))
    }
}

/// UTF-8 bytes, so that names sort by their bytes.
impl KeyCodec for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8")
    }
}

/// The string's bytes, a `0` byte, then the second key: sorts as the `(String, K)` tuple
/// because the names used as the first part never contain a `0` byte (the naming rules
/// allow none).
impl<K: KeyCodec> KeyCodec for (String, K) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(0);
        self.1.encode_into(out);
    }

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        let split = bytes
            .iter()
            .position(|b| *b == 0)
            .ok_or("missing separator")?;
        let first = String::from_utf8(bytes[..split].to_vec()).map_err(|_| "not UTF-8")?;
        Ok((first, K::decode_from(&bytes[split + 1..])?))
    }
}

/// Both big-endian, so that `(revision, sequence)` keys sort numerically.
impl KeyCodec for (u64, u32) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        let (first, second) = bytes.split_first_chunk::<8>().ok_or("expected 12 bytes")?;
        let second: [u8; 4] = second.try_into().map_err(|_| "expected 12 bytes")?;
        Ok((u64::from_be_bytes(*first), u32::from_be_bytes(second)))
    }
}

/// Length of `client_id` (u32 big-endian), its bytes, then `serial` (u64 big-endian).
impl KeyCodec for ClientRequestId {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.client_id.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.client_id.as_bytes());
        out.extend_from_slice(&self.serial.to_be_bytes());
    }

    fn decode_from(bytes: &[u8]) -> Result<Self, &'static str> {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or("missing length")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() != len + 8 {
            return Err("length does not match");
        }
        let (client_id, serial) = rest.split_at(len);
        Ok(ClientRequestId {
            client_id: String::from_utf8(client_id.to_vec()).map_err(|_| "client id not UTF-8")?,
            serial: u64::decode_from(serial)?,
        })
    }
}

/// A typed region of one sled tree: every key starts with [`KeySpace::PREFIX`], followed
/// by the encoded [`KeySpace::Key`]; every value is the bincode of [`KeySpace::Value`].
pub(crate) trait KeySpace {
    /// Name for errors and docs.
    const NAME: &'static str;
    /// The tree holding this key space.
    const TREE: TreeName;
    /// Bytes every key starts with. No prefix of a space is a prefix of another's in the
    /// same tree (a unit test in `key_spaces.rs` checks this).
    const PREFIX: &'static [u8];
    /// Key type.
    type Key: KeyCodec;
    /// Value type.
    type Value: Serialize + DeserializeOwned;

    /// The full sled key of `key`.
    fn key_bytes(key: &Self::Key) -> Vec<u8> {
        let mut out = Self::PREFIX.to_vec();
        key.encode_into(&mut out);
        out
    }

    /// The key stored as `bytes` (prefix included).
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, CodecError> {
        let malformed = |reason| CodecError::Key {
            space: Self::NAME,
            key: bytes.to_vec(),
            reason,
        };
        let rest = bytes
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| malformed("wrong prefix"))?;
        Self::Key::decode_from(rest).map_err(malformed)
    }

    /// The stored bytes of `value`.
    fn encode_value(value: &Self::Value) -> Result<Vec<u8>, CodecError> {
        encode(value).map_err(|source| CodecError::Encode {
            space: Self::NAME,
            source,
        })
    }

    /// The value stored as `bytes`.
    fn decode_value(bytes: &[u8]) -> Result<Self::Value, CodecError> {
        decode(bytes).map_err(|source| CodecError::Decode {
            space: Self::NAME,
            source,
        })
    }
}

/// The bincode configuration of everything the store writes: little-endian fixed-width
/// integers, the same bytes as `bincode::serialize`.
fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding()
}

/// Encodes `value` with the store's bincode configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    bincode_options().serialize(value)
}

/// Decodes exactly `bytes` (trailing bytes are an error); no length read from the bytes can
/// make it allocate more than `bytes.len()`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode_options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
}

/// Opens the sled tree of key space `KS`.
pub(crate) fn open_tree<KS: KeySpace>(db: &sled::Db) -> Result<sled::Tree, sled::Error> {
    db.open_tree(KS::TREE.as_str())
}

/// Typed access to key space `KS` outside transactions.
pub(crate) struct Space<KS> {
    tree: sled::Tree,
    _space: PhantomData<fn() -> KS>,
}

impl<KS> Clone for Space<KS> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            _space: PhantomData,
        }
    }
}

impl<KS: KeySpace> Space<KS> {
    /// Typed access to `KS` in its tree of `db`.
    pub(crate) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            tree: open_tree::<KS>(db)?,
            _space: PhantomData,
        })
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &KS::Key) -> Result<Option<KS::Value>, StoreError> {
        match self.tree.get(KS::key_bytes(key))? {
            Some(bytes) => Ok(Some(KS::decode_value(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`.
    pub(crate) fn insert(&self, key: &KS::Key, value: &KS::Value) -> Result<(), StoreError> {
        self.tree
            .insert(KS::key_bytes(key), KS::encode_value(value)?)?;
        Ok(())
    }

    /// Entries whose keys fall in `range`, in key order.
    pub(crate) fn range<R: RangeBounds<KS::Key>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Result<(KS::Key, KS::Value), StoreError>> {
        let start = match range.start_bound() {
            Bound::Included(k) => Bound::Included(KS::key_bytes(k)),
            Bound::Excluded(k) => Bound::Excluded(KS::key_bytes(k)),
            Bound::Unbounded => Bound::Included(KS::PREFIX.to_vec()),
        };
        let iter = match range.end_bound() {
            Bound::Included(k) => self.tree.range((start, Bound::Included(KS::key_bytes(k)))),
            Bound::Excluded(k) => self.tree.range((start, Bound::Excluded(KS::key_bytes(k)))),
            Bound::Unbounded => match prefix_end(KS::PREFIX) {
                Some(end) => self.tree.range((start, Bound::Excluded(end))),
                None => self.tree.range((start, Bound::Unbounded)),
            },
        };
        iter.map(|item| {
            let (key, value) = item?;
            Ok((KS::decode_key(&key)?, KS::decode_value(&value)?))
        })
    }

    /// Every entry of the key space, in key order.
    pub(crate) fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = Result<(KS::Key, KS::Value), StoreError>> {
        self.range(..)
    }

    /// Adds the removal of every key of `KS` in `range` to `batch`.
    pub(crate) fn remove_range_into<R: RangeBounds<KS::Key>>(
        &self,
        range: R,
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        for item in self.range(range) {
            let (key, _) = item?;
            batch.remove(KS::key_bytes(&key));
        }
        Ok(())
    }

    /// Applies `batch` to this key space's tree atomically.
    pub(crate) fn apply_batch(&self, batch: sled::Batch) -> Result<(), StoreError> {
        Ok(self.tree.apply_batch(batch)?)
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// when no such string exists (the prefix is empty or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Adds `key -> value` of key space `KS` to `batch`.
pub(crate) fn batch_insert<KS: KeySpace>(
    batch: &mut sled::Batch,
    key: &KS::Key,
    value: &KS::Value,
) -> Result<(), CodecError> {
    batch.insert(KS::key_bytes(key), KS::encode_value(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: encode a few client request ids; check that they decode back and that byte
    /// order equals (client_id length, client_id, serial) order.
    #[test]
    fn client_request_id_keys_round_trip_and_sort() {
        let ids = [
            ClientRequestId {
                client_id: "a".into(),
                serial: 2,
            },
            ClientRequestId {
                client_id: "a".into(),
                serial: 10,
            },
            ClientRequestId {
                client_id: "ab".into(),
                serial: 1,
            },
        ];
        let mut encoded = Vec::new();
        for id in &ids {
            let mut out = Vec::new();
            id.encode_into(&mut out);
            assert_eq!(ClientRequestId::decode_from(&out).as_ref(), Ok(id));
            encoded.push(out);
        }
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        assert!(ClientRequestId::decode_from(&[0, 0, 0, 9, b'a']).is_err());
    }

    /// Steps: encode `(String, String)`, `(String, u64)` and `(u64, u32)` keys; check that
    /// they decode back and that byte order equals tuple order.
    #[test]
    fn tuple_keys_round_trip_and_sort() {
        fn check<K: KeyCodec + std::fmt::Debug + PartialEq + Ord>(keys: &[K]) {
            let encoded: Vec<Vec<u8>> = keys
                .iter()
                .map(|key| {
                    let mut out = Vec::new();
                    key.encode_into(&mut out);
                    assert_eq!(K::decode_from(&out).as_ref(), Ok(key));
                    out
                })
                .collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]));
            assert!(encoded.windows(2).all(|w| w[0] < w[1]));
        }
        let s = |v: &str| v.to_string();
        check(&[(s("a"), s("z")), (s("a.b"), s("a")), (s("ab"), s(""))]);
        check(&[(s("a"), 7u64), (s("a"), 300), (s("a.b"), 1)]);
        check(&[(1u64, 9u32), (2, 0), (2, 1), (256, 0)]);
        assert!(<(String, u64)>::decode_from(b"abc").is_err());
        assert!(<(u64, u32)>::decode_from(&[0; 11]).is_err());
    }

    /// Steps: store four namespaces in a temporary sled database; read ranges through
    /// `Space`: unbounded, bounded, inverted (empty, no panic), and the last key.
    #[test]
    fn space_range_follows_key_order_and_bounds() {
        use crate::key_spaces::Namespaces;
        use crate::records::NamespaceOwner;
        use crate::records::NamespaceRecord;

        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("sled");
        let space = Space::<Namespaces>::open(&db).expect("space");
        for name in ["b", "a", "c", "d"] {
            let record = NamespaceRecord {
                owner: NamespaceOwner::Group("g".to_string()),
                reserved_at: 1,
                operator_reserved: true,
            };
            space.insert(&name.to_string(), &record).expect("insert");
        }
        let keys = |range: (Bound<String>, Bound<String>)| -> Vec<String> {
            space
                .range(range)
                .map(|item| item.expect("read").0)
                .collect()
        };
        let s = |v: &str| v.to_string();
        assert_eq!(
            keys((Bound::Unbounded, Bound::Unbounded)),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            keys((Bound::Included(s("b")), Bound::Excluded(s("d")))),
            ["b", "c"]
        );
        assert_eq!(
            keys((Bound::Excluded(s("a")), Bound::Included(s("c")))),
            ["b", "c"]
        );
        assert!(keys((Bound::Included(s("d")), Bound::Excluded(s("b")))).is_empty());
        assert_eq!(
            space.iter().next_back().map(|i| i.expect("read").0),
            Some(s("d"))
        );
    }

    /// Steps: compute the end bound of ordinary, `0xff`-ending and empty prefixes.
    #[test]
    fn prefix_end_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_end(b"ns/"), Some(b"ns0".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// Steps: decode bytes whose length prefix claims 4 GiB; expect an error, not an
    /// allocation; decode a value followed by junk; expect an error.
    #[test]
    fn decode_refuses_oversized_lengths_and_trailing_bytes() {
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'x'];
        assert!(decode::<String>(&huge).is_err());
        let mut bytes = encode(&7u64).expect("encode");
        bytes.push(0);
        assert!(decode::<u64>(&bytes).is_err());
    }
}
