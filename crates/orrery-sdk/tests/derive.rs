//! `#[derive(OrreryType)]`: the types it derives and the values it reads and writes, for
//! every shape it accepts (records, the unit record, newtypes, unions of unit, newtype
//! and record variants), and the paths it reports for values that do not fit.

use orrery_sdk::types::{CType, CValue};
use orrery_sdk::OrreryType;

#[derive(Debug, Clone, PartialEq, OrreryType)]
struct Meters(f64);

#[derive(Debug, Clone, PartialEq, OrreryType)]
struct Nothing;

#[derive(Debug, Clone, PartialEq, OrreryType)]
struct Route {
    name: String,
    legs: Vec<Meters>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, OrreryType)]
enum Step {
    Walk(Meters),
    Ride { line: String, stops: i64 },
    Wait,
}

#[test]
fn derived_types_follow_the_rust_shapes() {
    assert_eq!(Meters::ctype(), CType::Float);
    assert_eq!(Nothing::ctype(), CType::Product(vec![]));
    assert_eq!(
        Route::ctype(),
        CType::Product(vec![
            ("name".into(), CType::String),
            ("legs".into(), CType::list(CType::Float)),
            ("note".into(), CType::Optional(Box::new(CType::String))),
        ])
    );
    assert_eq!(
        Step::ctype(),
        CType::Union(vec![
            ("Walk".into(), CType::Float),
            (
                "Ride".into(),
                CType::Product(vec![
                    ("line".into(), CType::String),
                    ("stops".into(), CType::Int)
                ])
            ),
            ("Wait".into(), CType::Product(vec![])),
        ])
    );
}

#[test]
fn derived_values_round_trip_and_type_check() {
    let route = Route {
        name: "home".into(),
        legs: vec![Meters(12.5), Meters(300.0)],
        note: None,
    };
    let value = route.clone().into_value();
    orrery_sdk::types::check(&value, &Route::ctype()).expect("the value has the derived type");
    assert_eq!(Route::from_value(value).unwrap(), route);

    for step in [
        Step::Walk(Meters(3.0)),
        Step::Ride {
            line: "U2".into(),
            stops: 4,
        },
        Step::Wait,
    ] {
        let value = step.clone().into_value();
        orrery_sdk::types::check(&value, &Step::ctype()).expect("a Step value");
        assert_eq!(Step::from_value(value).unwrap(), step);
    }
    assert_eq!(Nothing::from_value(Nothing.into_value()).unwrap(), Nothing);
}

#[test]
fn values_that_do_not_fit_name_the_place() {
    let missing = CValue::product([("name", CValue::String("x".into()))]);
    let error = Route::from_value(missing).unwrap_err();
    assert!(error.to_string().contains("legs"), "{error}");

    let wrong_leg = CValue::product([
        ("name", CValue::String("x".into())),
        ("legs", CValue::List(vec![CValue::String("far".into())])),
        ("note", CValue::none()),
    ]);
    let error = Route::from_value(wrong_leg).unwrap_err();
    assert!(error.to_string().contains("legs"), "{error}");

    let ride = CValue::union(
        "Ride",
        CValue::product([
            ("line", CValue::String("U2".into())),
            ("stops", CValue::Bool(true)),
        ]),
    );
    let error = Step::from_value(ride).unwrap_err();
    assert!(error.to_string().contains("Ride.stops"), "{error}");

    let unknown = CValue::union("Fly", CValue::product::<&str>([]));
    assert!(Step::from_value(unknown)
        .unwrap_err()
        .to_string()
        .contains("Fly"));
    assert!(Step::from_value(CValue::Int(1)).is_err());
}
