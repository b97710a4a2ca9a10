//! `TypeSchema` (protobuf) <-> [`CType`].
//!
//! `to_ctype(&to_schema(t)) == Ok(t)` for every valid type: product field
//! order and union variant names are kept. Decoding checks what the
//! protobuf cannot: every required part is set, names follow the module-name
//! rule and are unique, unions are not empty, and the nesting depth and
//! width stay within [`MAX_SCHEMA_DEPTH`] and [`MAX_SCHEMA_MEMBERS`].

use crate::errors::SchemaError;
use crate::limits::{MAX_SCHEMA_DEPTH, MAX_SCHEMA_MEMBERS};
use crate::names::ModuleName;
use crate::path::{Located, Segment, WithinExt};
use crate::pb::{self, type_schema::Kind};
use crate::CType;

/// Writes a type as a protobuf schema.
pub fn to_schema(ty: &CType) -> pb::TypeSchema {
    let kind = match ty {
        CType::String => Kind::Primitive(pb::PrimitiveType::String as i32),
        CType::Int => Kind::Primitive(pb::PrimitiveType::Int as i32),
        CType::Float => Kind::Primitive(pb::PrimitiveType::Float as i32),
        CType::Bool => Kind::Primitive(pb::PrimitiveType::Bool as i32),
        CType::List(element) => Kind::List(Box::new(pb::ListType {
            element: Some(Box::new(to_schema(element))),
        })),
        CType::Map(key, value) => Kind::Map(Box::new(pb::MapType {
            key: Some(Box::new(to_schema(key))),
            value: Some(Box::new(to_schema(value))),
        })),
        CType::Product(fields) => Kind::Product(pb::ProductType {
            fields: named_types(fields),
        }),
        CType::Union(variants) => Kind::Union(pb::UnionType {
            variants: named_types(variants),
        }),
        CType::Optional(inner) => Kind::Optional(Box::new(pb::OptionalType {
            inner: Some(Box::new(to_schema(inner))),
        })),
    };
    pb::TypeSchema { kind: Some(kind) }
}

fn named_types(members: &[(String, CType)]) -> Vec<pb::NamedType> {
    members
        .iter()
        .map(|(name, ty)| pb::NamedType {
            name: name.clone(),
            r#type: Some(to_schema(ty)),
        })
        .collect()
}

/// Reads a protobuf schema as a type, checking it on the way.
pub fn to_ctype(schema: &pb::TypeSchema) -> Result<CType, SchemaError> {
    to_ctype_at(schema, 1).map_err(|located| {
        let path = located.path();
        match located.error {
            Problem::Missing(what) => SchemaError::Missing {
                path,
                what: what.to_string(),
            },
            Problem::UnknownPrimitive(value) => SchemaError::UnknownPrimitive { path, value },
            Problem::BadName(source) => SchemaError::BadName { path, source },
            Problem::DuplicateName(name) => SchemaError::DuplicateName { path, name },
            Problem::EmptyUnion => SchemaError::EmptyUnion { path },
            Problem::TooDeep => SchemaError::TooDeep {
                path,
                max: MAX_SCHEMA_DEPTH,
            },
            Problem::TooWide(count) => SchemaError::TooWide {
                path,
                count,
                max: MAX_SCHEMA_MEMBERS,
            },
        }
    })
}

/// What can be wrong at one place of a schema; [`to_ctype`] adds the path.
enum Problem {
    Missing(&'static str),
    UnknownPrimitive(i32),
    BadName(crate::errors::NameError),
    DuplicateName(String),
    EmptyUnion,
    TooDeep,
    TooWide(usize),
}

type Step<T> = Result<T, Located<Problem>>;

fn to_ctype_at(schema: &pb::TypeSchema, depth: usize) -> Step<CType> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(Located::here(Problem::TooDeep));
    }
    let kind = schema
        .kind
        .as_ref()
        .ok_or(Located::here(Problem::Missing("kind")))?;
    Ok(match kind {
        Kind::Primitive(p) => match pb::PrimitiveType::try_from(*p) {
            Ok(pb::PrimitiveType::String) => CType::String,
            Ok(pb::PrimitiveType::Int) => CType::Int,
            Ok(pb::PrimitiveType::Float) => CType::Float,
            Ok(pb::PrimitiveType::Bool) => CType::Bool,
            Ok(pb::PrimitiveType::Unspecified) | Err(_) => {
                return Err(Located::here(Problem::UnknownPrimitive(*p)))
            }
        },
        Kind::List(list) => CType::List(Box::new(required(
            list.element.as_deref(),
            "element",
            depth,
        )?)),
        Kind::Map(map) => CType::Map(
            Box::new(required(map.key.as_deref(), "key", depth)?),
            Box::new(required(map.value.as_deref(), "value", depth)?),
        ),
        Kind::Product(product) => {
            CType::Product(members(&product.fields, depth).within(|| Segment::Part("fields"))?)
        }
        Kind::Union(union) => {
            if union.variants.is_empty() {
                return Err(Located::here(Problem::EmptyUnion));
            }
            CType::Union(members(&union.variants, depth).within(|| Segment::Part("variants"))?)
        }
        Kind::Optional(optional) => CType::Optional(Box::new(required(
            optional.inner.as_deref(),
            "inner",
            depth,
        )?)),
    })
}

/// The nested schema `what`, which must be set; errors inside it get the
/// path segment `.what`.
fn required(schema: Option<&pb::TypeSchema>, what: &'static str, depth: usize) -> Step<CType> {
    match schema {
        Some(schema) => to_ctype_at(schema, depth + 1).within(|| Segment::Part(what)),
        None => Err(Located::here(Problem::Missing(what))),
    }
}

fn members(named: &[pb::NamedType], depth: usize) -> Step<Vec<(String, CType)>> {
    if named.len() > MAX_SCHEMA_MEMBERS {
        return Err(Located::here(Problem::TooWide(named.len())));
    }
    let mut out: Vec<(String, CType)> = Vec::with_capacity(named.len());
    for (i, member) in named.iter().enumerate() {
        let at = || Segment::Index(i);
        ModuleName::parse(&member.name)
            .map_err(|e| Located::here(Problem::BadName(e)))
            .within(at)?;
        if out.iter().any(|(name, _)| *name == member.name) {
            return Err(Located::here(Problem::DuplicateName(member.name.clone())).within(at()));
        }
        let ty = required(member.r#type.as_ref(), "type", depth).within(at)?;
        out.push((member.name.clone(), ty));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primitive(p: pb::PrimitiveType) -> pb::TypeSchema {
        pb::TypeSchema {
            kind: Some(Kind::Primitive(p as i32)),
        }
    }

    fn product(fields: Vec<(&str, Option<pb::TypeSchema>)>) -> pb::TypeSchema {
        let fields = fields
            .into_iter()
            .map(|(name, ty)| pb::NamedType {
                name: name.into(),
                r#type: ty,
            })
            .collect();
        pb::TypeSchema {
            kind: Some(Kind::Product(pb::ProductType { fields })),
        }
    }

    /// Each malformed schema gives its own error with the path to the fault.
    /// Steps: decode a table of broken schemas and compare the error text.
    #[test]
    fn malformed_schemas_are_typed_errors() {
        let int = || Some(primitive(pb::PrimitiveType::Int));
        let cases: Vec<(pb::TypeSchema, &str)> = vec![
            (pb::TypeSchema { kind: None }, "$: kind is missing"),
            (primitive(pb::PrimitiveType::Unspecified), "$: unknown primitive type 0"),
            (pb::TypeSchema { kind: Some(Kind::Primitive(99)) }, "$: unknown primitive type 99"),
            (product(vec![("a", int()), ("a", int())]), "$.fields[1]: duplicate name \"a\""),
            (product(vec![("a", None)]), "$.fields[0]: type is missing"),
            (
                product(vec![("9a", int())]),
                "$.fields[0]: module name \"9a\" is invalid: segment \"9a\" must start with a letter",
            ),
            (
                pb::TypeSchema { kind: Some(Kind::Union(pb::UnionType { variants: vec![] })) },
                "$: a union needs at least one variant",
            ),
            (
                pb::TypeSchema { kind: Some(Kind::List(Box::new(pb::ListType { element: None }))) },
                "$: element is missing",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(to_ctype(&schema).unwrap_err().to_string(), expected);
        }
    }

    /// Depth is bounded: 32 levels decode, 33 do not.
    /// Steps: nest optionals around an Int to each depth and decode.
    #[test]
    fn depth_is_bounded() {
        let nest = |levels: usize| {
            let mut ty = CType::Int;
            for _ in 1..levels {
                ty = CType::optional(ty);
            }
            ty
        };
        let ok = nest(MAX_SCHEMA_DEPTH);
        assert_eq!(to_ctype(&to_schema(&ok)), Ok(ok));
        let err = to_ctype(&to_schema(&nest(MAX_SCHEMA_DEPTH + 1))).unwrap_err();
        assert!(
            matches!(
                err,
                SchemaError::TooDeep {
                    max: MAX_SCHEMA_DEPTH,
                    ..
                }
            ),
            "{err}"
        );
    }
}
