//! Locks the JSON (typed and self-describing) and protobuf encodings of a
//! handful of sample values, so the wire formats cannot drift unnoticed.
//! If one of these fails, the format changed: that is a protocol change
//! and needs a new version, not a new fixture.

use orrery_types::{json, wire, CType, CValue};

struct Fixture {
    name: &'static str,
    ty: CType,
    value: CValue,
    typed: &'static str,
    tagged: &'static str,
    protobuf_hex: &'static str,
}

fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "an integer beyond 2^53 is a string",
            ty: CType::Int,
            value: CValue::Int(9007199254740993),
            typed: r#""9007199254740993""#,
            tagged: r#"{"int":"9007199254740993"}"#,
            protobuf_hex: "108280808080808020",
        },
        Fixture {
            name: "signed zero, NaN, infinity and a decimal",
            ty: CType::list(CType::Float),
            value: CValue::List(vec![
                CValue::Float(-0.0),
                CValue::Float(f64::NAN),
                CValue::Float(f64::INFINITY),
                CValue::Float(0.1),
            ]),
            typed: r#"[-0.0,"NaN","Infinity",0.1]"#,
            tagged: r#"{"list":[{"float":-0.0},{"float":"NaN"},{"float":"Infinity"},{"float":0.1}]}"#,
            protobuf_hex: "2a2c0a091900000000000000800a0919000000000000f87f0a0919000000000000f07f0a09199a9999999999b93f",
        },
        Fixture {
            name: "a product with an absent optional field",
            ty: CType::product([
                ("name", CType::String),
                ("age", CType::Int),
                ("nick", CType::optional(CType::String)),
            ]),
            value: CValue::product([
                ("name", CValue::String("Ada".into())),
                ("age", CValue::Int(36)),
                ("nick", CValue::none()),
            ]),
            typed: r#"{"name":"Ada","age":36,"nick":null}"#,
            tagged: r#"{"product":{"name":{"string":"Ada"},"age":{"int":36},"nick":{"optional":null}}}"#,
            protobuf_hex: "3a260a0d0a046e616d6512050a034164610a090a03616765120210480a0a0a046e69636b12024a00",
        },
        Fixture {
            name: "a union keeps its variant name",
            ty: CType::union([("circle", CType::Float), ("label", CType::String)]),
            value: CValue::union("label", CValue::String("é".into())),
            typed: r#"{"label":"é"}"#,
            tagged: r#"{"union":{"label":{"string":"é"}}}"#,
            protobuf_hex: "420d0a056c6162656c12040a02c3a9",
        },
        Fixture {
            name: "a map with non-string keys is a list of pairs",
            ty: CType::map(CType::Int, CType::Bool),
            value: CValue::Map(vec![
                (CValue::Int(-1), CValue::Bool(true)),
                (CValue::Int(2), CValue::Bool(false)),
            ]),
            typed: r#"[[-1,true],[2,false]]"#,
            tagged: r#"{"map":[[{"int":-1},{"bool":true}],[{"int":2},{"bool":false}]]}"#,
            protobuf_hex: "32140a080a021001120220010a080a02100412022000",
        },
        Fixture {
            name: "a map with string keys is an object, in entry order",
            ty: CType::map(CType::String, CType::Int),
            value: CValue::Map(vec![
                (CValue::String("b".into()), CValue::Int(1)),
                (CValue::String("a".into()), CValue::Int(2)),
            ]),
            typed: r#"{"b":1,"a":2}"#,
            tagged: r#"{"map":[[{"string":"b"},{"int":1}],[{"string":"a"},{"int":2}]]}"#,
            protobuf_hex: "32160a090a030a0162120210020a090a030a016112021004",
        },
        Fixture {
            name: "optional of optional: absent, present-but-absent, present",
            ty: CType::list(CType::optional(CType::optional(CType::Int))),
            value: CValue::List(vec![
                CValue::none(),
                CValue::some(CValue::none()),
                CValue::some(CValue::some(CValue::Int(5))),
            ]),
            typed: r#"[null,[null],[5]]"#,
            tagged: r#"{"list":[{"optional":null},{"optional":{"optional":null}},{"optional":{"optional":{"int":5}}}]}"#,
            protobuf_hex: "2a180a024a000a064a040a024a000a0a4a080a064a040a02100a",
        },
    ]
}

/// Each sample encodes to its locked bytes and text in all three codecs,
/// and the locked forms decode back to the sample.
/// Steps: for every fixture, encode with each codec and compare with the
/// locked form; decode the locked form and compare with the value.
#[test]
fn encodings_are_locked() {
    for f in fixtures() {
        assert_eq!(
            json::encode_string(&f.value, &f.ty).unwrap(),
            f.typed,
            "{}: typed JSON",
            f.name
        );
        assert_eq!(
            json::encode_tagged_string(&f.value),
            f.tagged,
            "{}: tagged JSON",
            f.name
        );
        assert_eq!(
            hex::encode(wire::encode(&f.value)),
            f.protobuf_hex,
            "{}: protobuf",
            f.name
        );

        assert_eq!(
            json::decode_str(f.typed, &f.ty).unwrap(),
            f.value,
            "{}: typed JSON",
            f.name
        );
        assert_eq!(
            json::decode_tagged_str(f.tagged).unwrap(),
            f.value,
            "{}: tagged JSON",
            f.name
        );
        let bytes = hex::decode(f.protobuf_hex).unwrap();
        assert_eq!(
            wire::decode(&bytes).unwrap(),
            f.value,
            "{}: protobuf",
            f.name
        );
    }
}
