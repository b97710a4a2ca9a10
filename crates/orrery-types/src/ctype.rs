//! `CType`: the types a module's input and output can have.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A type of the Orrery type system.
///
/// Products keep their field order and unions their variant names: both are
/// part of the type and survive every codec. Field and variant names are
/// unique within their product or union (checked when a schema is decoded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CType {
    /// UTF-8 text.
    String,
    /// A signed 64-bit integer.
    Int,
    /// An IEEE 754 binary64 float; NaN and the infinities are values too.
    Float,
    /// A boolean.
    Bool,
    /// An ordered sequence of elements of one type.
    List(Box<CType>),
    /// Keys of one type mapped to values of another; keys need not be strings.
    Map(Box<CType>, Box<CType>),
    /// A record: named fields in declaration order. Empty is the unit type.
    Product(Vec<(String, CType)>),
    /// Exactly one of the named variants. Never empty.
    Union(Vec<(String, CType)>),
    /// A value that may be absent.
    Optional(Box<CType>),
}

impl CType {
    /// `List(element)`.
    pub fn list(element: CType) -> CType {
        CType::List(Box::new(element))
    }

    /// `Map(key, value)`.
    pub fn map(key: CType, value: CType) -> CType {
        CType::Map(Box::new(key), Box::new(value))
    }

    /// `Optional(inner)`.
    pub fn optional(inner: CType) -> CType {
        CType::Optional(Box::new(inner))
    }

    /// `Product(fields)` from `(name, type)` pairs.
    pub fn product<N: Into<String>>(fields: impl IntoIterator<Item = (N, CType)>) -> CType {
        CType::Product(fields.into_iter().map(|(n, t)| (n.into(), t)).collect())
    }

    /// `Union(variants)` from `(name, type)` pairs.
    pub fn union<N: Into<String>>(variants: impl IntoIterator<Item = (N, CType)>) -> CType {
        CType::Union(variants.into_iter().map(|(n, t)| (n.into(), t)).collect())
    }

    /// How deeply the type nests: 1 for a primitive.
    pub fn depth(&self) -> usize {
        1 + match self {
            CType::String | CType::Int | CType::Float | CType::Bool => 0,
            CType::List(t) | CType::Optional(t) => t.depth(),
            CType::Map(k, v) => k.depth().max(v.depth()),
            CType::Product(members) | CType::Union(members) => {
                members.iter().map(|(_, t)| t.depth()).max().unwrap_or(0)
            }
        }
    }
}

/// Writes the type compactly: `Product{name: String, tags: List<String>}`,
/// `Union{circle: Float | square: Float}`, `Map<String, Int>`, `Optional<Int>`.
impl fmt::Display for CType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CType::String => f.write_str("String"),
            CType::Int => f.write_str("Int"),
            CType::Float => f.write_str("Float"),
            CType::Bool => f.write_str("Bool"),
            CType::List(t) => write!(f, "List<{t}>"),
            CType::Map(k, v) => write!(f, "Map<{k}, {v}>"),
            CType::Optional(t) => write!(f, "Optional<{t}>"),
            CType::Product(fields) => write_members(f, "Product", fields, ", "),
            CType::Union(variants) => write_members(f, "Union", variants, " | "),
        }
    }
}

fn write_members(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    members: &[(String, CType)],
    separator: &str,
) -> fmt::Result {
    write!(f, "{label}{{")?;
    for (i, (name, ty)) in members.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{name}: {ty}")?;
    }
    f.write_str("}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Display writes nested types compactly and depth counts levels.
    /// Steps: build a nested product, compare its display and depth.
    #[test]
    fn display_and_depth() {
        let t = CType::product([
            ("name", CType::String),
            ("tags", CType::list(CType::optional(CType::Int))),
            (
                "shape",
                CType::union([
                    ("circle", CType::Float),
                    ("dot", CType::product(Vec::<(String, CType)>::new())),
                ]),
            ),
        ]);
        assert_eq!(
            t.to_string(),
            "Product{name: String, tags: List<Optional<Int>>, shape: Union{circle: Float | dot: Product{}}}"
        );
        assert_eq!(t.depth(), 4);
        assert_eq!(
            CType::map(CType::Int, CType::Bool).to_string(),
            "Map<Int, Bool>"
        );
    }
}
