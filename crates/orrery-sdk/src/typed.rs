//! Rust types as Orrery types: [`OrreryType`] gives a Rust type its [`CType`] and converts
//! its values to and from [`CValue`], so a module handler can take and return plain Rust
//! values ([`crate::Module::typed`]). Implemented here for `String`, `i64`, `f64`, `bool`,
//! `Vec<T>`, `Option<T>`, `BTreeMap<K, V>` and `()` (the empty product); structs and enums
//! get it from `#[derive(OrreryType)]`.

use std::collections::BTreeMap;

use orrery_types::{CType, CValue};

/// A Rust type with an Orrery type.
///
/// `from_value(v)` accepts every value `v` that type-checks against `ctype()`, and
/// `from_value(x.into_value())` gives `x` back.
pub trait OrreryType: Sized {
    /// The Orrery type of this Rust type.
    fn ctype() -> CType;
    /// The value as an Orrery value of [`OrreryType::ctype`].
    fn into_value(self) -> CValue;
    /// The Rust value of an Orrery value, or where and why it does not fit.
    fn from_value(value: CValue) -> Result<Self, ValueError>;
}

/// A value that does not fit a Rust type: where in the value (`$.items[2].price`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValueError {
    path: String,
    message: String,
}

impl ValueError {
    /// An error at `path` (`$` is the whole value; `$.a`, `$[3]` below it).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValueError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error one level down, in field `field` of a product or variant of a union:
    /// `$.x` becomes `$.field.x`.
    pub fn at_field(self, field: &str) -> Self {
        self.below(&format!(".{field}"))
    }

    /// The same error one level down, in element `index` of a list: `$.x` becomes `$[index].x`.
    pub fn at_index(self, index: usize) -> Self {
        self.below(&format!("[{index}]"))
    }

    /// Where in the value, from the root `$`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong there.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn below(self, step: &str) -> Self {
        let rest = self.path.strip_prefix('$').unwrap_or(&self.path);
        ValueError {
            path: format!("${step}{rest}"),
            message: self.message,
        }
    }

    /// A value of another kind than `expected`.
    pub fn mismatch(expected: &CType, found: &CValue) -> Self {
        ValueError::new(
            "$",
            format!("expected {expected}, found {}", found.kind_name()),
        )
    }
}

macro_rules! scalar {
    ($rust:ty, $variant:ident) => {
        impl OrreryType for $rust {
            fn ctype() -> CType {
                CType::$variant
            }
            fn into_value(self) -> CValue {
                CValue::$variant(self)
            }
            fn from_value(value: CValue) -> Result<Self, ValueError> {
                match value {
                    CValue::$variant(v) => Ok(v),
                    other => Err(ValueError::mismatch(&Self::ctype(), &other)),
                }
            }
        }
    };
}

scalar!(String, String);
scalar!(i64, Int);
scalar!(f64, Float);
scalar!(bool, Bool);

impl<T: OrreryType> OrreryType for Vec<T> {
    fn ctype() -> CType {
        CType::list(T::ctype())
    }
    fn into_value(self) -> CValue {
        CValue::List(self.into_iter().map(T::into_value).collect())
    }
    fn from_value(value: CValue) -> Result<Self, ValueError> {
        match value {
            CValue::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| T::from_value(v).map_err(|e| e.at_index(i)))
                .collect(),
            other => Err(ValueError::mismatch(&Self::ctype(), &other)),
        }
    }
}

impl<T: OrreryType> OrreryType for Option<T> {
    fn ctype() -> CType {
        CType::optional(T::ctype())
    }
    fn into_value(self) -> CValue {
        CValue::Optional(self.map(|v| Box::new(v.into_value())))
    }
    fn from_value(value: CValue) -> Result<Self, ValueError> {
        match value {
            CValue::Optional(None) => Ok(None),
            CValue::Optional(Some(inner)) => T::from_value(*inner).map(Some),
            other => Err(ValueError::mismatch(&Self::ctype(), &other)),
        }
    }
}

impl<K: OrreryType + Ord, V: OrreryType> OrreryType for BTreeMap<K, V> {
    fn ctype() -> CType {
        CType::map(K::ctype(), V::ctype())
    }
    fn into_value(self) -> CValue {
        CValue::Map(
            self.into_iter()
                .map(|(k, v)| (k.into_value(), v.into_value()))
                .collect(),
        )
    }
    fn from_value(value: CValue) -> Result<Self, ValueError> {
        match value {
            CValue::Map(entries) => {
                let mut map = BTreeMap::new();
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    let key = K::from_value(k).map_err(|e| e.below(&format!("[{i}].key")))?;
                    let value = V::from_value(v).map_err(|e| e.below(&format!("[{i}].value")))?;
                    if map.insert(key, value).is_some() {
                        return Err(ValueError::new(format!("$[{i}].key"), "duplicate key"));
                    }
                }
                Ok(map)
            }
            other => Err(ValueError::mismatch(&Self::ctype(), &other)),
        }
    }
}

/// `()` is the empty product, the unit type.
impl OrreryType for () {
    fn ctype() -> CType {
        CType::Product(Vec::new())
    }
    fn into_value(self) -> CValue {
        CValue::Product(Vec::new())
    }
    fn from_value(value: CValue) -> Result<Self, ValueError> {
        match value {
            CValue::Product(fields) if fields.is_empty() => Ok(()),
            other => Err(ValueError::mismatch(&Self::ctype(), &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: OrreryType + Clone + PartialEq + std::fmt::Debug>(value: T) {
        let converted = value.clone().into_value();
        orrery_types::check(&converted, &T::ctype()).expect("the value has the type");
        assert_eq!(T::from_value(converted).unwrap(), value);
    }

    /// Every built-in impl gives a value of its own type and reads it back.
    /// Steps: convert a value of each type, type-check it, convert it back.
    #[test]
    fn built_in_types_round_trip() {
        round_trip("hé".to_string());
        round_trip(-7i64);
        round_trip(2.5f64);
        round_trip(true);
        round_trip(vec![1i64, 2, 3]);
        round_trip(Some(vec![Some("a".to_string()), None]));
        round_trip(None::<bool>);
        round_trip(BTreeMap::from([
            (1i64, "one".to_string()),
            (2, "two".to_string()),
        ]));
        round_trip(());
        assert_eq!(<()>::ctype(), CType::Product(vec![]));
        assert_eq!(
            <BTreeMap<String, Vec<f64>>>::ctype(),
            CType::map(CType::String, CType::list(CType::Float))
        );
    }

    /// A value of another shape is refused with the path to the culprit.
    /// Steps: read a list with a String in an Int list, a map with a bad value, a wrong
    /// scalar, a non-empty product as `()`, and a map with a repeated key.
    #[test]
    fn mismatches_name_the_path() {
        let list = CValue::List(vec![CValue::Int(1), CValue::String("x".into())]);
        let error = Vec::<i64>::from_value(list).unwrap_err();
        assert_eq!(error.path(), "$[1]");
        assert_eq!(error.to_string(), "$[1]: expected Int, found String");

        let map = CValue::Map(vec![(CValue::Int(1), CValue::Bool(true))]);
        let error = BTreeMap::<i64, String>::from_value(map).unwrap_err();
        assert_eq!(error.path(), "$[0].value");

        assert!(bool::from_value(CValue::Int(1)).is_err());
        assert!(<()>::from_value(CValue::product([("a", CValue::Int(1))])).is_err());

        let repeated = CValue::Map(vec![
            (CValue::Int(1), CValue::Int(1)),
            (CValue::Int(1), CValue::Int(2)),
        ]);
        let error = BTreeMap::<i64, i64>::from_value(repeated).unwrap_err();
        assert_eq!(error.to_string(), "$[1].key: duplicate key");
    }

    /// `at_field` and `at_index` prefix the path, innermost step last.
    #[test]
    fn paths_nest() {
        let error = ValueError::new("$", "bad").at_index(2).at_field("items");
        assert_eq!(error.path(), "$.items[2]");
        let error = ValueError::new("$.price", "bad").at_field("order");
        assert_eq!(error.path(), "$.order.price");
        assert_eq!(error.message(), "bad");
    }
}
