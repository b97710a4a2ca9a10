//! Proptest strategies: types, values of a given type, and valid names.
//!
//! Compiled for this crate's tests and, with the `arbitrary` feature, for
//! other crates' tests. Generated types are valid (unique member names,
//! non-empty unions, depth within the limit); generated values type-check
//! against the type they were generated for; floats cover the whole range,
//! NaN and the infinities included.

use crate::{CType, CValue};
use proptest::prelude::*;

/// A field, variant or module name: a letter, then letters, digits or `_`.
pub fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_]{0,11}"
}

/// A valid namespace of one to four segments.
pub fn namespace() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..=4).prop_map(|segments| segments.join("."))
}

/// A valid `host:port` endpoint: DNS name, IPv4 or bracketed IPv6.
pub fn endpoint() -> impl Strategy<Value = String> {
    let dns =
        prop::collection::vec("[a-z]([a-z0-9-]{0,8}[a-z0-9])?", 1..=3).prop_map(|l| l.join("."));
    let host = prop_oneof![
        dns,
        any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
    ];
    (host, 1u16..=u16::MAX).prop_map(|(host, port)| format!("{host}:{port}"))
}

/// Named members with unique names, for products (may be empty) and unions.
fn members(
    inner: impl Strategy<Value = CType> + Clone,
    min: usize,
) -> impl Strategy<Value = Vec<(String, CType)>> {
    prop::collection::vec((segment(), inner), min..5).prop_map(|mut members| {
        let mut seen = std::collections::HashSet::new();
        members.retain(|(name, _)| seen.insert(name.clone()));
        members
    })
}

/// Any valid type, nesting up to about five levels.
pub fn ctype() -> impl Strategy<Value = CType> {
    let leaf = prop_oneof![
        Just(CType::String),
        Just(CType::Int),
        Just(CType::Float),
        Just(CType::Bool)
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            inner.clone().prop_map(CType::list),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| CType::map(k, v)),
            members(inner.clone(), 0).prop_map(CType::Product),
            members(inner.clone(), 1).prop_map(CType::Union),
            inner.prop_map(CType::optional),
        ]
    })
}

/// Any float: normal, subnormal, zeros, infinities and NaN.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => prop::num::f64::ANY,
        1 => Just(f64::NAN),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
    ]
}

/// Any integer, with the JSON-safe boundaries and extremes drawn often.
fn int() -> impl Strategy<Value = i64> {
    const SAFE: i64 = (1 << 53) - 1;
    prop_oneof![
        4 => any::<i64>(),
        1 => prop_oneof![
            Just(SAFE), Just(SAFE + 1), Just(-SAFE), Just(-SAFE - 1), Just(i64::MIN), Just(i64::MAX), Just(0)
        ],
    ]
}

/// A value of type `ty`.
pub fn value_of(ty: &CType) -> BoxedStrategy<CValue> {
    match ty {
        CType::String => any::<String>().prop_map(CValue::String).boxed(),
        CType::Int => int().prop_map(CValue::Int).boxed(),
        CType::Float => float().prop_map(CValue::Float).boxed(),
        CType::Bool => any::<bool>().prop_map(CValue::Bool).boxed(),
        CType::List(element) => prop::collection::vec(value_of(element), 0..4)
            .prop_map(CValue::List)
            .boxed(),
        CType::Map(key, value) => prop::collection::vec((value_of(key), value_of(value)), 0..4)
            .prop_map(|entries| {
                let mut unique: Vec<(CValue, CValue)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    if !unique.iter().any(|(seen, _)| *seen == k) {
                        unique.push((k, v));
                    }
                }
                CValue::Map(unique)
            })
            .boxed(),
        CType::Product(fields) => {
            let names: Vec<String> = fields.iter().map(|(name, _)| name.clone()).collect();
            fields
                .iter()
                .map(|(_, ty)| value_of(ty))
                .collect::<Vec<_>>()
                .prop_map(move |values| {
                    CValue::Product(names.iter().cloned().zip(values).collect())
                })
                .boxed()
        }
        CType::Union(variants) => {
            let choices: Vec<BoxedStrategy<CValue>> = variants
                .iter()
                .map(|(name, ty)| {
                    let name = name.clone();
                    value_of(ty)
                        .prop_map(move |v| CValue::union(name.clone(), v))
                        .boxed()
                })
                .collect();
            prop::strategy::Union::new(choices).boxed()
        }
        CType::Optional(inner) => {
            prop_oneof![1 => Just(CValue::none()), 3 => value_of(inner).prop_map(CValue::some)]
                .boxed()
        }
    }
}

/// A type and a value of it.
pub fn typed_value() -> impl Strategy<Value = (CType, CValue)> {
    ctype().prop_flat_map(|ty| {
        let values = value_of(&ty);
        (Just(ty), values)
    })
}
