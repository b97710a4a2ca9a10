//! Property tests of the type system's invariants.
//!
//! Each property runs 1,000 cases unless `PROPTEST_CASES` says otherwise.

use orrery_types::arbitrary::{ctype, endpoint, namespace, segment, typed_value, value_of};
use orrery_types::names::{Endpoint, GroupId, ModuleName, Namespace, QualifiedName};
use orrery_types::{check, json, schema, wire, CType, CValue, NameError};
use proptest::prelude::*;
use prost::Message;

/// 1,000 cases, or `PROPTEST_CASES` when set.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1000;
    }
    config
}

/// The kind of a type's root, to draw a type whose values can never fit.
fn root_kind(ty: &CType) -> u8 {
    match ty {
        CType::String => 0,
        CType::Int => 1,
        CType::Float => 2,
        CType::Bool => 3,
        CType::List(_) => 4,
        CType::Map(..) => 5,
        CType::Product(_) => 6,
        CType::Union(_) => 7,
        CType::Optional(_) => 8,
    }
}

/// Arbitrary JSON trees, for the decoders' no-panic properties.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        prop_oneof![
            Just("NaN".to_string()),
            Just("-Infinity".to_string()),
            "[a-z0-9]{0,4}".prop_map(String::from)
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 64, 5, |inner| {
        let key = prop_oneof![
            segment(),
            Just("int".to_string()),
            Just("list".to_string()),
            Just("optional".to_string()),
            Just("product".to_string()),
            Just("union".to_string()),
            Just("map".to_string()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((key, inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Ways to break a valid namespace, each of which must be refused.
fn broken_namespace() -> impl Strategy<Value = String> {
    (
        namespace(),
        0usize..64,
        prop::sample::select(vec!['-', ' ', '/', 'é', '@', ':', '*']),
        0u8..5,
    )
        .prop_map(|(ns, at, bad, how)| match how {
            0 => {
                let mut chars: Vec<char> = ns.chars().collect();
                let i = at % chars.len();
                chars[i] = bad;
                chars.into_iter().collect()
            }
            1 => format!("9{ns}"),
            2 => format!("{ns}."),
            3 => format!("{ns}..x"),
            _ => format!("{ns}.{}", "a".repeat(130)),
        })
}

proptest! {
    #![proptest_config(config())]

    /// `to_ctype(to_schema(t)) == t`: field order and variant names survive.
    #[test]
    fn schema_round_trip(ty in ctype()) {
        let schema = schema::to_schema(&ty);
        prop_assert_eq!(schema::to_ctype(&schema), Ok(ty.clone()));
        // Through the bytes too, as a provider in another language sends it.
        let decoded = orrery_types::pb::TypeSchema::decode(schema.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(schema::to_ctype(&decoded), Ok(ty));
    }

    /// A generated value type-checks against its type.
    #[test]
    fn generated_values_check((ty, value) in typed_value()) {
        prop_assert_eq!(check(&value, &ty), Ok(()));
    }

    /// The protobuf codec round-trips every value; its bytes are exactly
    /// prost's for the same message, and the message path agrees.
    #[test]
    fn protobuf_round_trip((_ty, value) in typed_value()) {
        let bytes = wire::encode(&value);
        prop_assert_eq!(&bytes, &wire::to_pb(&value).encode_to_vec());
        prop_assert_eq!(wire::decode(&bytes), Ok(value.clone()));
        let message = orrery_types::pb::Value::decode(bytes.as_slice()).unwrap();
        prop_assert_eq!(wire::from_pb(message), Ok(value));
    }

    /// The typed JSON codec round-trips every value of every type, as a
    /// tree and through text.
    #[test]
    fn typed_json_round_trip((ty, value) in typed_value()) {
        let text = json::encode_string(&value, &ty).unwrap();
        prop_assert_eq!(json::decode_str(&text, &ty), Ok(value.clone()), "text: {}", text);
        let tree = json::encode(&value, &ty).unwrap();
        prop_assert_eq!(json::decode(&tree, &ty), Ok(value));
    }

    /// The self-describing JSON codec round-trips every value.
    #[test]
    fn tagged_json_round_trip((_ty, value) in typed_value()) {
        let text = json::encode_tagged_string(&value);
        prop_assert_eq!(json::decode_tagged_str(&text), Ok(value), "text: {}", text);
    }

    /// A value is rejected by a type whose root is of another kind.
    #[test]
    fn values_of_another_type_are_rejected((ty, value) in typed_value(), other in ctype()) {
        prop_assume!(root_kind(&ty) != root_kind(&other));
        prop_assert!(check(&value, &other).is_err());
        prop_assert!(json::encode_string(&value, &other).is_err());
    }

    /// A value with one leaf swapped for a value of another kind is rejected.
    #[test]
    fn a_wrong_leaf_is_rejected((ty, value) in typed_value(), pick in any::<prop::sample::Index>()) {
        let mut value = value;
        let mut leaves = Vec::new();
        collect_leaves(&mut value, &mut leaves);
        prop_assume!(!leaves.is_empty());
        let leaf = pick.get_mut(&mut leaves);
        **leaf = match **leaf {
            CValue::String(_) => CValue::Int(1),
            _ => CValue::String("wrong".into()),
        };
        prop_assert!(check(&value, &ty).is_err());
    }

    /// Arbitrary bytes never panic the protobuf decoders.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = wire::decode(&bytes);
        if let Ok(schema) = orrery_types::pb::TypeSchema::decode(bytes.as_slice()) {
            let _ = schema::to_ctype(&schema);
        }
    }

    /// Arbitrary JSON never panics the JSON decoders, typed or not.
    #[test]
    fn arbitrary_json_never_panics(doc in any_json(), ty in ctype()) {
        let _ = json::decode(&doc, &ty);
        let _ = json::decode_tagged(&doc);
        let _ = json::decode_str(&doc.to_string(), &ty);
    }

    /// Arbitrary text never panics the JSON decoders.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,64}", ty in ctype()) {
        let _ = json::decode_str(&text, &ty);
        let _ = json::decode_tagged_str(&text);
    }

    /// Generated valid names validate and print back as given.
    #[test]
    fn valid_names_validate(ns in namespace(), module in segment(), ep in endpoint()) {
        prop_assert_eq!(Namespace::parse(&ns).map(|n| n.to_string()), Ok(ns.clone()));
        prop_assert!(ModuleName::parse(&module).is_ok());
        prop_assert!(GroupId::parse(&ns).is_ok());
        let qualified = format!("{ns}.{module}");
        prop_assert_eq!(QualifiedName::parse(&qualified).map(|q| q.to_string()), Ok(qualified));
        let parsed = Endpoint::parse(&ep);
        prop_assert!(parsed.is_ok(), "{}: {:?}", ep, parsed);
    }

    /// A valid name broken in any of several ways gives a typed error.
    #[test]
    fn broken_names_are_typed_errors(ns in broken_namespace(), ep in endpoint(), how in 0u8..3) {
        let err = Namespace::parse(&ns);
        prop_assert!(matches!(err, Err(NameError::Invalid { .. } | NameError::TooLong { .. })), "{}: {:?}", ns, err);
        let broken_ep = match how {
            0 => format!("grpc://{ep}"),
            1 => ep.rsplit_once(':').map(|(host, _)| format!("{host}:0")).unwrap(),
            _ => ep.rsplit_once(':').map(|(host, _)| host.to_string()).unwrap(),
        };
        prop_assert!(Endpoint::parse(&broken_ep).is_err(), "{}", broken_ep);
    }
}

/// Every scalar leaf of a value, to corrupt one.
fn collect_leaves<'a>(value: &'a mut CValue, out: &mut Vec<&'a mut CValue>) {
    match value {
        CValue::String(_) | CValue::Int(_) | CValue::Float(_) | CValue::Bool(_) => out.push(value),
        CValue::List(items) => items.iter_mut().for_each(|v| collect_leaves(v, out)),
        CValue::Map(entries) => entries.iter_mut().for_each(|(_, v)| collect_leaves(v, out)),
        CValue::Product(fields) => fields.iter_mut().for_each(|(_, v)| collect_leaves(v, out)),
        CValue::Union(_, inner) => collect_leaves(inner, out),
        CValue::Optional(Some(inner)) => collect_leaves(inner, out),
        CValue::Optional(None) => {}
    }
}

/// `value_of` only draws values of its type, whatever the type.
#[test]
fn value_strategy_covers_nan_and_optional_of_optional() {
    let ty = CType::optional(CType::optional(CType::Float));
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen_nested_none = false;
    for _ in 0..200 {
        let value = value_of(&ty).new_tree(&mut runner).unwrap().current();
        assert_eq!(check(&value, &ty), Ok(()));
        let text = json::encode_string(&value, &ty).unwrap();
        assert_eq!(json::decode_str(&text, &ty), Ok(value.clone()));
        seen_nested_none |= text == "[null]";
    }
    assert!(seen_nested_none, "present-but-absent was never drawn");
}
