//! Names and their rules: namespaces, module names, qualified names, group
//! ids, executor endpoints, versions, and reserved namespaces.
//!
//! Each validated name is a newtype that can only be built through `parse`,
//! so code that holds a [`Namespace`] knows it is valid. The rules:
//! - a *segment* is a letter, then letters, digits or `_`
//!   (at most [`MAX_SEGMENT_LEN`] characters in a namespace);
//! - a *namespace* is one or more segments joined by `.`
//!   (at most [`MAX_NAMESPACE_LEN`]);
//! - a *module name* (also a product field or union variant name) is one
//!   segment of at most [`MAX_MODULE_NAME_LEN`];
//! - a *qualified name* is `namespace.module`: its last segment is the module;
//! - a *group id* is 1 to [`MAX_GROUP_ID_LEN`] of letters, digits, `_`, `-`, `.`;
//! - an *endpoint* is `host:port`: a DNS name, an IPv4 address or a bracketed
//!   IPv6 address, no scheme, port 1-65535;
//! - a *reserved namespace* prefix covers whole segments, ignoring ASCII
//!   case: `stdlib` reserves `stdlib`, `stdlib.io` and `StdLib.io`, not `stdlibx`.

use crate::errors::{NameError, NameKind};
use crate::limits::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Namespaces reserved on every cluster, whatever the configuration says.
pub const BUILT_IN_RESERVED: [&str; 2] = ["stdlib", "orrery"];

/// Refuses an empty name and one longer than `max` characters.
fn check_length(kind: NameKind, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = name.chars().count();
    if len > max {
        return Err(NameError::TooLong {
            kind,
            name: name.to_string(),
            len,
            max,
        });
    }
    Ok(())
}

fn invalid(kind: NameKind, name: &str, reason: impl Into<String>) -> NameError {
    NameError::Invalid {
        kind,
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Checks one segment: a letter, then letters, digits or `_`. Lengths are
/// the caller's to check.
fn check_segment(kind: NameKind, whole: &str, segment: &str) -> Result<(), NameError> {
    let mut chars = segment.chars();
    match chars.next() {
        None => Err(invalid(kind, whole, "has an empty segment")),
        Some(first) if !first.is_ascii_alphabetic() => Err(invalid(
            kind,
            whole,
            format!("segment {segment:?} must start with a letter"),
        )),
        Some(_) => match chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            Some(bad) => Err(invalid(
                kind,
                whole,
                format!("{bad:?} is not allowed (letters, digits and '_' only)"),
            )),
            None => Ok(()),
        },
    }
}

macro_rules! name_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }
    };
}

name_newtype!(
    /// A valid namespace, e.g. `acme.text`.
    Namespace
);
name_newtype!(
    /// A valid module name (one segment), e.g. `uppercase`. Product field and
    /// union variant names follow the same rule.
    ModuleName
);
name_newtype!(
    /// A valid provider group id, e.g. `text-workers`.
    GroupId
);

impl Namespace {
    /// Validates a namespace.
    pub fn parse(s: &str) -> Result<Namespace, NameError> {
        let kind = NameKind::Namespace;
        check_length(kind, s, MAX_NAMESPACE_LEN)?;
        for segment in s.split('.') {
            check_segment(kind, s, segment)?;
            if segment.len() > MAX_SEGMENT_LEN {
                return Err(invalid(
                    kind,
                    s,
                    format!("segment {segment:?} is longer than {MAX_SEGMENT_LEN} characters"),
                ));
            }
        }
        Ok(Namespace(s.to_string()))
    }

    /// Whether `prefix` covers this namespace by whole segments: `a.b`
    /// covers `a.b` and `a.b.c`, not `a.bc`.
    pub fn is_under(&self, prefix: &Namespace) -> bool {
        self.covered_by(prefix, |a, b| a == b)
    }

    fn covered_by(&self, prefix: &Namespace, same: impl Fn(&[u8], &[u8]) -> bool) -> bool {
        let (name, prefix) = (self.0.as_bytes(), prefix.0.as_bytes());
        name.len() >= prefix.len()
            && same(&name[..prefix.len()], prefix)
            && (name.len() == prefix.len() || name[prefix.len()] == b'.')
    }
}

impl ModuleName {
    /// Validates a module name (or a field or variant name).
    pub fn parse(s: &str) -> Result<ModuleName, NameError> {
        let kind = NameKind::ModuleName;
        check_length(kind, s, MAX_MODULE_NAME_LEN)?;
        check_segment(kind, s, s)?;
        Ok(ModuleName(s.to_string()))
    }
}

impl GroupId {
    /// Validates a group id.
    pub fn parse(s: &str) -> Result<GroupId, NameError> {
        let kind = NameKind::GroupId;
        check_length(kind, s, MAX_GROUP_ID_LEN)?;
        match s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            Some(bad) => Err(invalid(
                kind,
                s,
                format!("{bad:?} is not allowed (letters, digits, '_', '-' and '.' only)"),
            )),
            None => Ok(GroupId(s.to_string())),
        }
    }
}

/// A module's full name, `namespace.module`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    /// The namespace: every segment but the last.
    pub namespace: Namespace,
    /// The module: the last segment.
    pub module: ModuleName,
}

impl QualifiedName {
    /// Splits and validates `namespace.module`.
    pub fn parse(s: &str) -> Result<QualifiedName, NameError> {
        let (namespace, module) = s
            .rsplit_once('.')
            .ok_or_else(|| invalid(NameKind::QualifiedName, s, "must be namespace.module"))?;
        Ok(QualifiedName {
            namespace: Namespace::parse(namespace)?,
            module: ModuleName::parse(module)?,
        })
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.module)
    }
}

/// The host part of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Host {
    /// A DNS name.
    Dns(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

/// A valid executor endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The host.
    pub host: Host,
    /// The port, 1-65535.
    pub port: u16,
}

impl Endpoint {
    /// Validates `host:port`.
    pub fn parse(s: &str) -> Result<Endpoint, NameError> {
        let kind = NameKind::Endpoint;
        check_length(kind, s, MAX_ENDPOINT_LEN)?;
        if s.contains("://") {
            return Err(invalid(kind, s, "must not have a scheme (write host:port)"));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| invalid(kind, s, "must be host:port"))?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(invalid(kind, s, format!("port {port:?} is not 1-65535"))),
        };
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| invalid(kind, s, "an IPv6 host needs a closing ']'"))?;
            Host::V6(
                inner
                    .parse()
                    .map_err(|_| invalid(kind, s, "bad IPv6 address"))?,
            )
        } else if host.contains(':') {
            return Err(invalid(
                kind,
                s,
                "an IPv6 host must be in brackets: [addr]:port",
            ));
        } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
            Host::V4(v4)
        } else {
            check_dns_name(s, host)?;
            Host::Dns(host.to_ascii_lowercase())
        };
        Ok(Endpoint { host, port })
    }
}

fn check_dns_name(whole: &str, host: &str) -> Result<(), NameError> {
    let kind = NameKind::Endpoint;
    if host.is_empty() {
        return Err(invalid(kind, whole, "host is empty"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(invalid(
            kind,
            whole,
            format!("host is longer than {MAX_HOST_LEN}"),
        ));
    }
    for label in host.strip_suffix('.').unwrap_or(host).split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid(
                kind,
                whole,
                format!("host label {label:?} is not a DNS label"),
            ));
        }
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(
            kind,
            whole,
            "host looks like an IPv4 address but is not one",
        ));
    }
    Ok(())
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Dns(name) => write!(f, "{name}:{}", self.port),
            Host::V4(ip) => write!(f, "{ip}:{}", self.port),
            Host::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// Validates a module version: 1 to [`MAX_VERSION_LEN`] printable ASCII
/// characters without spaces (e.g. `1.2.0-rc.1`).
pub fn check_version(s: &str) -> Result<(), NameError> {
    let kind = NameKind::Version;
    check_length(kind, s, MAX_VERSION_LEN)?;
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(kind, s, "only printable ASCII without spaces"));
    }
    Ok(())
}

/// The namespaces no provider may register in: the built-in ones
/// ([`BUILT_IN_RESERVED`]) and any configured, each covering the namespaces
/// under it by whole segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedNamespaces {
    prefixes: Vec<Namespace>,
}

impl ReservedNamespaces {
    /// The built-in prefixes plus `extra` (each must be a valid namespace).
    pub fn new<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> Result<Self, NameError> {
        let mut prefixes: Vec<Namespace> = BUILT_IN_RESERVED
            .iter()
            .map(|p| Namespace(p.to_string()))
            .collect();
        for p in extra {
            let p = Namespace::parse(p.as_ref())?;
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
        Ok(ReservedNamespaces { prefixes })
    }

    /// Every prefix, built-in ones first.
    pub fn prefixes(&self) -> &[Namespace] {
        &self.prefixes
    }

    /// `Err(NameError::Reserved)` when `namespace` falls under a reserved
    /// prefix, ignoring ASCII case so that `StdLib` cannot pose as `stdlib`.
    pub fn check(&self, namespace: &Namespace) -> Result<(), NameError> {
        let ignoring_case = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
        match self
            .prefixes
            .iter()
            .find(|p| namespace.covered_by(p, ignoring_case))
        {
            Some(prefix) => Err(NameError::Reserved {
                namespace: namespace.to_string(),
                prefix: prefix.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl Default for ReservedNamespaces {
    fn default() -> Self {
        ReservedNamespaces::new(std::iter::empty::<&str>()).expect("built-in prefixes are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of namespaces: the valid ones parse, each invalid one fails
    /// with the expected kind of error.
    /// Steps: parse each entry and compare with the expectation.
    #[test]
    fn namespace_rules() {
        for ok in ["a", "acme", "acme.text_v2", "A.b9.c_", &"x".repeat(63)] {
            assert!(Namespace::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1abc", "a..b", ".a", "a.", "a-b", "a.9b", "é", "a b", "a._b",
        ] {
            assert!(Namespace::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Namespace::parse(&"x".repeat(64)),
            Err(NameError::Invalid { .. })
        ));
        let long = vec!["abcdefgh"; 15].join(".");
        assert!(matches!(
            Namespace::parse(&long),
            Err(NameError::TooLong { max: 128, .. })
        ));
    }

    /// Qualified names split at the last dot; module names are one segment.
    /// Steps: parse good and bad qualified names.
    #[test]
    fn qualified_names() {
        let q = QualifiedName::parse("acme.text.upper").unwrap();
        assert_eq!(q.namespace.as_str(), "acme.text");
        assert_eq!(q.module.as_str(), "upper");
        assert_eq!(q.to_string(), "acme.text.upper");
        assert!(QualifiedName::parse("upper").is_err());
        assert!(QualifiedName::parse("acme.").is_err());
        assert!(ModuleName::parse(&"m".repeat(65)).is_err());
    }

    /// Endpoints: host:port with DNS, IPv4 or bracketed IPv6; no scheme.
    /// Steps: parse a table of good and bad endpoints; check normalisation.
    #[test]
    fn endpoint_rules() {
        for ok in [
            "localhost:1",
            "10.0.0.1:65535",
            "[::1]:8080",
            "svc.cluster.local.:50051",
            "a-b.c:80",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "http://a:1",
            "a:0",
            "a:65536",
            "a:-1",
            "a:+1",
            "::1:80",
            "[::1:80",
            "[zz]:1",
            "-a:1",
            "a_b:1",
            "999.1.1.1:1",
            "a..b:1",
            ":80",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("Host.Example:9").unwrap().to_string(),
            "host.example:9"
        );
        assert_eq!(
            Endpoint::parse("[0:0::1]:9").unwrap().to_string(),
            "[::1]:9"
        );
    }

    /// Reserved prefixes cover whole segments, built-ins always included.
    /// Steps: build with one extra prefix, check covered and uncovered names.
    #[test]
    fn reserved_prefixes() {
        let reserved = ReservedNamespaces::new(["corp.internal"]).unwrap();
        let ns = |s| Namespace::parse(s).unwrap();
        assert!(reserved.check(&ns("stdlib")).is_err());
        assert!(reserved.check(&ns("stdlib.io")).is_err());
        assert!(reserved.check(&ns("orrery")).is_err());
        assert!(reserved.check(&ns("corp.internal.x")).is_err());
        assert!(reserved.check(&ns("StdLib.io")).is_err());
        assert!(reserved.check(&ns("stdlibx")).is_ok());
        assert!(ns("stdlib.io").is_under(&ns("stdlib")));
        assert!(!ns("StdLib.io").is_under(&ns("stdlib")));
        assert!(reserved.check(&ns("corp")).is_ok());
        assert!(reserved.check(&ns("corp.internalx")).is_ok());
        assert_eq!(
            reserved.check(&ns("stdlib.io")).unwrap_err().to_string(),
            "namespace \"stdlib.io\" is reserved (under \"stdlib\")"
        );
        assert!(ReservedNamespaces::new(["bad name"]).is_err());
    }

    /// Group ids and versions have their own character sets.
    /// Steps: parse good and bad examples.
    #[test]
    fn group_ids_and_versions() {
        assert!(GroupId::parse("text-workers.v2_a").is_ok());
        assert!(GroupId::parse("").is_err());
        assert!(GroupId::parse("a/b").is_err());
        assert!(check_version("1.2.0-rc.1").is_ok());
        assert!(check_version("1 2").is_err());
        assert!(check_version("").is_err());
    }
}
