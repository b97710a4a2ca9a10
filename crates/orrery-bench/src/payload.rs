//! What each benchmark write carries, and the names it writes under.
//!
//! Every write gets a unique name, `b<client>x<seq>_<run>`: the client's
//! index (4 digits), its sequence number (10 digits) and the run's random id
//! (8 hex digits), so that runs against the same cluster never collide.
//!
//! - etcd: `Put(key = name, value = value_size random bytes)`.
//! - Orrery: `ReserveNamespace(namespace, group_id)`, where the namespace is
//!   the name padded with random characters and, past one segment,
//!   further random segments, and the group id is random characters of
//!   `[A-Za-z0-9_.-]`. The two together carry `value_size` bytes: half each,
//!   each at most 128 characters, so 256 bytes at most (and at least the
//!   name plus one character of group).

use rand::{Rng, RngCore};

/// The longest namespace Orrery accepts.
pub const MAX_NAMESPACE_LEN: usize = 128;
/// The longest namespace segment Orrery accepts.
pub const MAX_SEGMENT_LEN: usize = 63;
/// The longest group id Orrery accepts.
pub const MAX_GROUP_ID_LEN: usize = 128;
/// The length of a unique name, `b<client:4>x<seq:10>_<run:8 hex>`.
pub const NAME_LEN: usize = 25;

const NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
const GROUP_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The unique name of write `seq` of client `client` in run `run`.
pub fn unique_name(client: usize, seq: u64, run: u32) -> String {
    format!("b{client:04}x{seq:010}_{run:08x}")
}

/// How an Orrery write spreads `value_size` bytes over namespace and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrrerySizing {
    /// Characters of namespace.
    pub namespace_len: usize,
    /// Characters of group id.
    pub group_len: usize,
}

impl OrrerySizing {
    /// Half of `value_size` each (the namespace takes the odd byte), each
    /// capped at its limit; the namespace holds at least the unique name.
    pub fn for_value_size(value_size: usize) -> OrrerySizing {
        let group_len = (value_size / 2).clamp(1, MAX_GROUP_ID_LEN);
        let namespace_len = value_size
            .saturating_sub(group_len)
            .clamp(NAME_LEN, MAX_NAMESPACE_LEN);
        // A small namespace cap can leave room the group may still take.
        let group_len = value_size
            .saturating_sub(namespace_len)
            .clamp(group_len, MAX_GROUP_ID_LEN);
        OrrerySizing {
            namespace_len,
            group_len,
        }
    }

    /// The bytes one write carries.
    pub fn total(&self) -> usize {
        self.namespace_len + self.group_len
    }
}

fn random_chars(rng: &mut impl Rng, alphabet: &[u8], n: usize, out: &mut String) {
    out.extend((0..n).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])));
}

/// A namespace of exactly `len` characters that starts with `name` (which
/// must be a valid segment no longer than `len`): the fewest segments of at
/// most [`MAX_SEGMENT_LEN`] characters, of about equal length, the first one
/// starting with `name`, the others with a letter, all padded with random
/// letters, digits and `_`.
pub fn padded_namespace(name: &str, len: usize, rng: &mut impl Rng) -> String {
    debug_assert!(name.len() <= len && len <= MAX_NAMESPACE_LEN);
    // n segments take n - 1 dots: the smallest n with n * 63 + n - 1 >= len.
    let segments = (len + 1).div_ceil(MAX_SEGMENT_LEN + 1);
    let chars = len - (segments - 1);
    let (base, extra) = (chars / segments, chars % segments);
    let mut out = String::with_capacity(len);
    for i in 0..segments {
        let seg_len = base + usize::from(i < extra);
        if i == 0 {
            out.push_str(name);
            random_chars(rng, NAME_CHARS, seg_len - name.len(), &mut out);
        } else {
            out.push('.');
            random_chars(rng, LETTERS, 1, &mut out);
            random_chars(rng, NAME_CHARS, seg_len - 1, &mut out);
        }
    }
    out
}

/// A random group id of `len` characters of `[A-Za-z0-9_.-]`.
pub fn random_group(len: usize, rng: &mut impl Rng) -> String {
    let mut out = String::with_capacity(len);
    random_chars(rng, GROUP_CHARS, len, &mut out);
    out
}

/// `len` random bytes.
pub fn random_value(len: usize, rng: &mut impl RngCore) -> Vec<u8> {
    let mut value = vec![0; len];
    rng.fill_bytes(&mut value);
    value
}

/// One line telling what a write carries, for the output header.
pub fn describe_writes(orrery: bool, value_size: usize) -> String {
    if orrery {
        let s = OrrerySizing::for_value_size(value_size);
        format!(
            "orrery write = ReserveNamespace(namespace: {} chars = unique name \
             b<client>x<seq>_<run> padded with random segments, group_id: {} random \
             chars of [A-Za-z0-9_.-]) = {} bytes per write for --value-size {} \
             (namespace <= {MAX_NAMESPACE_LEN}, group <= {MAX_GROUP_ID_LEN})",
            s.namespace_len,
            s.group_len,
            s.total(),
            value_size
        )
    } else {
        format!(
            "etcd write = Put(key: {NAME_LEN}-byte unique name b<client>x<seq>_<run>, \
             value: {value_size} random bytes)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn valid_namespace(s: &str) -> bool {
        s.len() <= MAX_NAMESPACE_LEN
            && s.split('.').all(|seg| {
                seg.len() <= MAX_SEGMENT_LEN
                    && seg.starts_with(|c: char| c.is_ascii_alphabetic())
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    }

    /// Every namespace length from the name's up to the limit comes out
    /// exactly that long, valid, and starting with the unique name.
    #[test]
    fn padded_namespaces_are_valid_and_exact() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let name = unique_name(12, 345, 0xdead_beef);
        assert_eq!(name, "b0012x0000000345_deadbeef");
        assert_eq!(name.len(), NAME_LEN);
        for len in NAME_LEN..=MAX_NAMESPACE_LEN {
            let ns = padded_namespace(&name, len, &mut rng);
            assert_eq!(ns.len(), len, "{ns}");
            assert!(valid_namespace(&ns), "{ns}");
            assert!(ns.starts_with(&name), "{ns}");
        }
    }

    /// The sizing splits the value size in halves within the limits.
    #[test]
    fn sizing() {
        let s = |v| {
            let s = OrrerySizing::for_value_size(v);
            (s.namespace_len, s.group_len)
        };
        assert_eq!(s(256), (128, 128));
        assert_eq!(s(100), (50, 50));
        assert_eq!(s(101), (51, 50));
        assert_eq!(s(10), (NAME_LEN, 5));
        assert_eq!(s(1000), (128, 128));
        assert_eq!(s(0), (NAME_LEN, 1));
        let group = random_group(128, &mut rand::rng());
        assert!(group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
    }
}
