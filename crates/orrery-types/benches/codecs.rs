//! Encode and decode of a ~1 KiB nested record through the protobuf and the
//! typed JSON codec, and a type check of it. Run: `cargo bench -p orrery-types`.

use criterion::{criterion_group, criterion_main, Criterion};
use orrery_types::{check, json, wire, CType, CValue};
use std::hint::black_box;

// The allocator the `orrery` binaries use, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An order: a customer, a list of line items, a map of attributes and a
/// union-typed payment.
fn order_type() -> CType {
    let item = CType::product([
        ("sku", CType::String),
        ("quantity", CType::Int),
        ("price", CType::Float),
        ("gift", CType::optional(CType::String)),
    ]);
    let payment = CType::union([
        (
            "card",
            CType::product([("last4", CType::String), ("expiry", CType::String)]),
        ),
        ("invoice", CType::Int),
    ]);
    CType::product([
        ("id", CType::Int),
        (
            "customer",
            CType::product([
                ("name", CType::String),
                ("email", CType::String),
                ("vip", CType::Bool),
            ]),
        ),
        ("items", CType::list(item)),
        ("attributes", CType::map(CType::String, CType::String)),
        ("payment", payment),
    ])
}

fn order_value() -> CValue {
    let items = (0..9)
        .map(|i| {
            CValue::product([
                ("sku", CValue::String(format!("SKU-{i:06}"))),
                ("quantity", CValue::Int(i + 1)),
                ("price", CValue::Float(9.99 * (i as f64 + 1.0))),
                (
                    "gift",
                    if i % 3 == 0 {
                        CValue::some(CValue::String("ribbon".into()))
                    } else {
                        CValue::none()
                    },
                ),
            ])
        })
        .collect();
    let attributes = (0..5)
        .map(|i| {
            (
                CValue::String(format!("attr{i}")),
                CValue::String(format!("value number {i}")),
            )
        })
        .collect();
    CValue::product([
        ("id", CValue::Int(1_234_567_890)),
        (
            "customer",
            CValue::product([
                ("name", CValue::String("Ada Lovelace".into())),
                ("email", CValue::String("ada@example.org".into())),
                ("vip", CValue::Bool(true)),
            ]),
        ),
        ("items", CValue::List(items)),
        ("attributes", CValue::Map(attributes)),
        (
            "payment",
            CValue::union(
                "card",
                CValue::product([
                    ("last4", CValue::String("4242".into())),
                    ("expiry", CValue::String("12/29".into())),
                ]),
            ),
        ),
    ])
}

#[allow(clippy::print_stdout)] // a benchmark reports its sample size
fn codecs(c: &mut Criterion) {
    let ty = order_type();
    let value = order_value();
    check(&value, &ty).expect("the sample is well typed");
    let bytes = wire::encode(&value);
    let text = json::encode_string(&value, &ty).unwrap();
    println!(
        "sample: protobuf {} bytes, JSON {} bytes",
        bytes.len(),
        text.len()
    );

    c.bench_function("protobuf encode", |b| {
        b.iter(|| wire::encode(black_box(&value)))
    });
    c.bench_function("protobuf decode", |b| {
        b.iter(|| wire::decode(black_box(&bytes)).unwrap())
    });
    c.bench_function("json encode", |b| {
        b.iter(|| json::encode_string(black_box(&value), &ty).unwrap())
    });
    c.bench_function("json decode", |b| {
        b.iter(|| json::decode_str(black_box(&text), &ty).unwrap())
    });
    c.bench_function("type check", |b| {
        b.iter(|| check(black_box(&value), &ty).unwrap())
    });
}

criterion_group!(benches, codecs);
criterion_main!(benches);
