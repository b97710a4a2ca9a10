//! Naming rules that apply enforces: namespace and group-id syntax, and which namespaces
//! the reserved prefixes cover.
//!
//! A namespace is dot-separated segments; each segment is an ASCII letter followed by
//! ASCII letters, digits or `_`, at most 63 characters; the whole name is at most 128
//! characters. A group id is 1 to 128 characters of `[A-Za-z0-9_.-]`.

/// Longest namespace segment.
pub(crate) const MAX_SEGMENT_LEN: usize = 63;

/// Longest namespace.
pub(crate) const MAX_NAMESPACE_LEN: usize = 128;

/// Longest group id.
pub(crate) const MAX_GROUP_LEN: usize = 128;

/// Prefixes reserved whatever the configured list says.
pub(crate) const ALWAYS_RESERVED: [&str; 2] = ["stdlib", "orrery"];

/// Checks namespace syntax; `Err` says which rule is broken.
pub(crate) fn validate_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("namespace is empty".to_string());
    }
    if namespace.len() > MAX_NAMESPACE_LEN {
        return Err(format!(
            "namespace is {} characters long, the limit is {MAX_NAMESPACE_LEN}",
            namespace.len()
        ));
    }
    for segment in namespace.split('.') {
        validate_segment(segment).map_err(|rule| format!("namespace {namespace:?}: {rule}"))?;
    }
    Ok(())
}

/// Checks one segment of a namespace.
fn validate_segment(segment: &str) -> Result<(), String> {
    let mut chars = segment.chars();
    match chars.next() {
        None => return Err("empty segment".to_string()),
        Some(first) if !first.is_ascii_alphabetic() => {
            return Err(format!("segment {segment:?} does not start with a letter"));
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!("segment {segment:?} contains {bad:?}"));
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(format!(
            "segment {segment:?} is {} characters long, the limit is {MAX_SEGMENT_LEN}",
            segment.len()
        ));
    }
    Ok(())
}

/// Checks group-id syntax; `Err` says which rule is broken.
pub(crate) fn validate_group(group: &str) -> Result<(), String> {
    if group.is_empty() {
        return Err("group id is empty".to_string());
    }
    if group.len() > MAX_GROUP_LEN {
        return Err(format!(
            "group id is {} characters long, the limit is {MAX_GROUP_LEN}",
            group.len()
        ));
    }
    if let Some(bad) = group
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!("group id {group:?} contains {bad:?}"));
    }
    Ok(())
}

/// The reserved prefix covering `namespace`, if any: a built-in one first, then the
/// configured ones. A prefix covers whole leading segments, compared without regard to
/// ASCII case (`stdlib` covers `stdlib`, `StdLib.x`, not `stdlibx`).
pub(crate) fn reserved_prefix(namespace: &str, configured: &[String]) -> Option<String> {
    ALWAYS_RESERVED
        .iter()
        .copied()
        .chain(configured.iter().map(String::as_str))
        .find(|prefix| covers(prefix, namespace))
        .map(str::to_string)
}

/// Whether `prefix` equals the first segments of `namespace`.
fn covers(prefix: &str, namespace: &str) -> bool {
    let (prefix, namespace) = (prefix.as_bytes(), namespace.as_bytes());
    namespace.len() >= prefix.len()
        && namespace[..prefix.len()].eq_ignore_ascii_case(prefix)
        && (namespace.len() == prefix.len() || namespace[prefix.len()] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: check accepted namespaces, then one example of each broken rule.
    #[test]
    fn namespace_rules() {
        for ok in ["a", "acme", "acme.images_v2", "A9.x_x"] {
            assert_eq!(validate_namespace(ok), Ok(()), "{ok}");
        }
        let long_segment = "a".repeat(MAX_SEGMENT_LEN + 1);
        let long_name = ["a"; 65].join(".");
        assert!(validate_namespace(&"a".repeat(MAX_SEGMENT_LEN)).is_ok());
        assert!(long_name.len() > MAX_NAMESPACE_LEN);
        for bad in [
            "",
            ".",
            "acme.",
            ".acme",
            "acme..x",
            "9acme",
            "_acme",
            "acme-x",
            "acme x",
            "acmé",
            long_segment.as_str(),
            long_name.as_str(),
        ] {
            assert!(validate_namespace(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Steps: check accepted group ids, then empty, too long and a forbidden character.
    #[test]
    fn group_rules() {
        for ok in ["g", "team-a.prod_1", &"g".repeat(MAX_GROUP_LEN)] {
            assert_eq!(validate_group(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a/b", &"g".repeat(MAX_GROUP_LEN + 1)] {
            assert!(validate_group(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Steps: match built-in and configured prefixes against whole segments, in any case.
    #[test]
    fn reserved_prefixes_cover_whole_segments() {
        let configured = vec!["acme.internal".to_string()];
        assert_eq!(
            reserved_prefix("stdlib", &configured).as_deref(),
            Some("stdlib")
        );
        assert_eq!(
            reserved_prefix("stdlib.x", &configured).as_deref(),
            Some("stdlib")
        );
        assert_eq!(
            reserved_prefix("StdLib.x", &configured).as_deref(),
            Some("stdlib")
        );
        assert_eq!(
            reserved_prefix("orrery", &configured).as_deref(),
            Some("orrery")
        );
        assert_eq!(reserved_prefix("stdlibx", &configured), None);
        assert_eq!(reserved_prefix("std", &configured), None);
        assert_eq!(
            reserved_prefix("acme.internal.x", &configured).as_deref(),
            Some("acme.internal")
        );
        assert_eq!(reserved_prefix("acme.internals", &configured), None);
        assert_eq!(reserved_prefix("acme", &configured), None);
    }
}
