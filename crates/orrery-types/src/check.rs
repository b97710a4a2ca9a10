//! Type checking: does a [`CValue`] have a [`CType`]?
//!
//! The rules are strict so that every value that checks has exactly one
//! encoding in each codec and round-trips unchanged:
//! - a product has every declared field, once, in declaration order, and
//!   no other (absent optional fields are written as `Optional(None)`);
//! - a union names one of its declared variants;
//! - a map has no two equal keys ([`CValue`]'s equality);
//! - an optional type takes only `CValue::Optional`, present or absent.

use crate::cvalue::first_duplicate_key;
use crate::errors::{TypeError, TypeProblem};
use crate::path::{Located, Segment, WithinExt};
use crate::{CType, CValue};

/// Checks that `value` has type `ty`.
///
/// The error names the first place that does not fit, e.g.
/// `$.items[3].price: expected Float, found String`.
pub fn check(value: &CValue, ty: &CType) -> Result<(), TypeError> {
    check_at(value, ty).map_err(finish)
}

/// Turns a located problem into a [`TypeError`].
pub(crate) fn finish(located: Located<TypeProblem>) -> TypeError {
    TypeError {
        path: located.path(),
        problem: located.error,
    }
}

/// The problem of a value of the wrong kind.
pub(crate) fn mismatch(ty: &CType, found: &str) -> Located<TypeProblem> {
    Located::here(TypeProblem::Mismatch {
        expected: ty.to_string(),
        found: found.to_string(),
    })
}

fn check_at(value: &CValue, ty: &CType) -> Result<(), Located<TypeProblem>> {
    match (ty, value) {
        (CType::String, CValue::String(_))
        | (CType::Int, CValue::Int(_))
        | (CType::Float, CValue::Float(_))
        | (CType::Bool, CValue::Bool(_)) => Ok(()),
        (CType::List(element), CValue::List(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_at(item, element).within(|| Segment::Index(i))?;
            }
            Ok(())
        }
        (CType::Map(key_ty, value_ty), CValue::Map(entries)) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                check_at(key, key_ty).within(|| Segment::MapKey(i))?;
                check_at(value, value_ty).within(|| Segment::MapValue(i))?;
            }
            match first_duplicate_key(entries.iter().map(|(key, _)| key)) {
                Some(i) => Err(Located::here(TypeProblem::DuplicateKey).within(Segment::MapKey(i))),
                None => Ok(()),
            }
        }
        (CType::Product(fields), CValue::Product(values)) => check_fields(fields, values),
        (CType::Union(variants), CValue::Union(variant, inner)) => {
            match variants.iter().find(|(name, _)| name == variant) {
                Some((_, variant_ty)) => {
                    check_at(inner, variant_ty).within(|| Segment::Field(variant.clone()))
                }
                None => Err(Located::here(TypeProblem::UnknownVariant(variant.clone()))),
            }
        }
        (CType::Optional(inner_ty), CValue::Optional(inner)) => match inner {
            Some(inner) => check_at(inner, inner_ty),
            None => Ok(()),
        },
        (ty, value) => Err(mismatch(ty, value.kind_name())),
    }
}

fn check_fields(
    fields: &[(String, CType)],
    values: &[(String, CValue)],
) -> Result<(), Located<TypeProblem>> {
    for (position, (name, field_ty)) in fields.iter().enumerate() {
        match values.get(position) {
            Some((found, value)) if found == name => {
                check_at(value, field_ty).within(|| Segment::Field(name.clone()))?;
            }
            Some((found, _)) => {
                return Err(Located::here(TypeProblem::UnexpectedField {
                    found: found.clone(),
                    expected: format!("field {name:?}"),
                }));
            }
            None => return Err(Located::here(TypeProblem::MissingField(name.clone()))),
        }
    }
    match values.get(fields.len()) {
        Some((extra, _)) => Err(Located::here(TypeProblem::UnexpectedField {
            found: extra.clone(),
            expected: "no more fields".to_string(),
        })),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> CType {
        CType::product([
            ("id", CType::Int),
            (
                "items",
                CType::list(CType::product([
                    ("name", CType::String),
                    ("price", CType::Float),
                ])),
            ),
            ("note", CType::optional(CType::String)),
        ])
    }

    fn item(price: CValue) -> CValue {
        CValue::product([("name", CValue::String("pen".into())), ("price", price)])
    }

    /// A well-formed value checks; a wrong leaf is reported with its path
    /// and both sides.
    /// Steps: check a valid order; replace the 4th item's price by a string;
    /// compare the error text.
    #[test]
    fn reports_the_path_and_both_sides() {
        let items: Vec<CValue> = (0..4).map(|i| item(CValue::Float(i as f64))).collect();
        let mut value = CValue::product([
            ("id", CValue::Int(7)),
            ("items", CValue::List(items)),
            ("note", CValue::none()),
        ]);
        assert_eq!(check(&value, &order()), Ok(()));

        if let CValue::Product(fields) = &mut value {
            if let CValue::List(items) = &mut fields[1].1 {
                items[3] = item(CValue::String("cheap".into()));
            }
        }
        let err = check(&value, &order()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "$.items[3].price: expected Float, found String"
        );
    }

    /// Product fields must be complete, in order, and without extras.
    /// Steps: drop a field, swap two, add one; each gives its own problem.
    #[test]
    fn product_fields_complete_and_ordered() {
        let ty = CType::product([("a", CType::Int), ("b", CType::Int)]);
        let missing = CValue::product([("a", CValue::Int(1))]);
        assert_eq!(
            check(&missing, &ty).unwrap_err().problem,
            TypeProblem::MissingField("b".into())
        );
        let swapped = CValue::product([("b", CValue::Int(1)), ("a", CValue::Int(2))]);
        assert!(matches!(
            check(&swapped, &ty).unwrap_err().problem,
            TypeProblem::UnexpectedField { .. }
        ));
        let extra = CValue::product([
            ("a", CValue::Int(1)),
            ("b", CValue::Int(2)),
            ("c", CValue::Int(3)),
        ]);
        assert_eq!(
            check(&extra, &ty).unwrap_err().to_string(),
            "$: unexpected field \"c\" (expected no more fields)"
        );
    }

    /// Unions need a declared variant; maps need unique keys; optionals
    /// need the Optional wrapper.
    /// Steps: check one bad value of each and compare the errors.
    #[test]
    fn unions_maps_optionals() {
        let shape = CType::union([("circle", CType::Float), ("square", CType::Float)]);
        assert_eq!(
            check(&CValue::union("circle", CValue::Float(1.0)), &shape),
            Ok(())
        );
        assert_eq!(
            check(&CValue::union("cube", CValue::Float(1.0)), &shape)
                .unwrap_err()
                .problem,
            TypeProblem::UnknownVariant("cube".into())
        );
        let map = CType::map(CType::Float, CType::Bool);
        let dup = CValue::Map(vec![
            (CValue::Float(f64::NAN), CValue::Bool(true)),
            (CValue::Float(f64::NAN), CValue::Bool(false)),
        ]);
        assert_eq!(
            check(&dup, &map).unwrap_err().to_string(),
            "$<key #1>: duplicate map key"
        );
        let opt = CType::optional(CType::Int);
        assert_eq!(
            check(&CValue::Int(3), &opt).unwrap_err().to_string(),
            "$: expected Optional<Int>, found Int"
        );
        assert_eq!(
            check(&CValue::none(), &CType::Int).unwrap_err().to_string(),
            "$: expected Int, found null"
        );
    }
}
