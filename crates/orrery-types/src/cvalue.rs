//! `CValue`: a value of the Orrery type system, and value equality.

/// A value. It mirrors [`crate::CType`] but carries no type of its own: it
/// is checked against the type of the module that takes or returns it
/// ([`crate::check()`]).
///
/// Equality is structural, with floats compared so that a value always
/// equals itself: two floats are equal when both are NaN (whatever their
/// payload) or when their bits are equal (so `0.0 != -0.0`). This makes
/// `Eq` lawful and gives map keys of type `Float` a well-defined uniqueness.
#[derive(Debug, Clone)]
pub enum CValue {
    /// A `String`.
    String(String),
    /// An `Int`.
    Int(i64),
    /// A `Float`.
    Float(f64),
    /// A `Bool`.
    Bool(bool),
    /// A `List`: the elements in order.
    List(Vec<CValue>),
    /// A `Map`: the entries in order, keys unique.
    Map(Vec<(CValue, CValue)>),
    /// A `Product`: the fields in the order the type declares them.
    Product(Vec<(String, CValue)>),
    /// A `Union`: the variant's name and its value.
    Union(String, Box<CValue>),
    /// An `Optional`: present or absent.
    Optional(Option<Box<CValue>>),
}

impl CValue {
    /// A union value of `variant`.
    pub fn union(variant: impl Into<String>, value: CValue) -> CValue {
        CValue::Union(variant.into(), Box::new(value))
    }

    /// A present optional value.
    pub fn some(value: CValue) -> CValue {
        CValue::Optional(Some(Box::new(value)))
    }

    /// An absent optional value.
    pub fn none() -> CValue {
        CValue::Optional(None)
    }

    /// A product value from `(name, value)` pairs.
    pub fn product<N: Into<String>>(fields: impl IntoIterator<Item = (N, CValue)>) -> CValue {
        CValue::Product(fields.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }

    /// The kind of the value as type errors name it: `String`, `Int`, ...,
    /// and `null` for an absent optional.
    pub fn kind_name(&self) -> &'static str {
        match self {
            CValue::String(_) => "String",
            CValue::Int(_) => "Int",
            CValue::Float(_) => "Float",
            CValue::Bool(_) => "Bool",
            CValue::List(_) => "List",
            CValue::Map(_) => "Map",
            CValue::Product(_) => "Product",
            CValue::Union(..) => "Union",
            CValue::Optional(Some(_)) => "Optional",
            CValue::Optional(None) => "null",
        }
    }
}

/// Two floats are the same value when both are NaN or their bits are equal.
pub(crate) fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

impl PartialEq for CValue {
    fn eq(&self, other: &CValue) -> bool {
        match (self, other) {
            (CValue::String(a), CValue::String(b)) => a == b,
            (CValue::Int(a), CValue::Int(b)) => a == b,
            (CValue::Float(a), CValue::Float(b)) => same_float(*a, *b),
            (CValue::Bool(a), CValue::Bool(b)) => a == b,
            (CValue::List(a), CValue::List(b)) => a == b,
            (CValue::Map(a), CValue::Map(b)) => a == b,
            (CValue::Product(a), CValue::Product(b)) => a == b,
            (CValue::Union(va, a), CValue::Union(vb, b)) => va == vb && a == b,
            (CValue::Optional(a), CValue::Optional(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for CValue {}

/// Hashes consistently with equality: every NaN hashes alike, other floats
/// by their bits.
impl std::hash::Hash for CValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            CValue::String(s) => s.hash(state),
            CValue::Int(i) => i.hash(state),
            CValue::Float(f) => (if f.is_nan() {
                f64::NAN.to_bits()
            } else {
                f.to_bits()
            })
            .hash(state),
            CValue::Bool(b) => b.hash(state),
            CValue::List(items) => items.hash(state),
            CValue::Map(entries) => entries.hash(state),
            CValue::Product(fields) => fields.hash(state),
            CValue::Union(variant, value) => (variant, value).hash(state),
            CValue::Optional(inner) => inner.hash(state),
        }
    }
}

/// The position of the first key that repeats an earlier one, if any.
/// Linear for a few keys, hashed for many, so a large map is not quadratic.
pub fn first_duplicate_key<'a>(keys: impl IntoIterator<Item = &'a CValue>) -> Option<usize> {
    const LINEAR_UP_TO: usize = 16;
    let mut seen: Vec<&CValue> = Vec::new();
    let mut hashed: std::collections::HashSet<&CValue> = std::collections::HashSet::new();
    for (i, key) in keys.into_iter().enumerate() {
        if i < LINEAR_UP_TO {
            if seen.contains(&key) {
                return Some(i);
            }
            seen.push(key);
        } else {
            if i == LINEAR_UP_TO {
                hashed.extend(seen.drain(..));
            }
            if !hashed.insert(key) {
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Float equality is reflexive for NaN and tells the zeros apart.
    /// Steps: compare NaNs with different payloads, then 0.0 and -0.0,
    /// nested inside a list.
    #[test]
    fn float_equality_is_by_bits_with_one_nan() {
        let quiet = f64::NAN;
        let payload = f64::from_bits(0x7ff8_0000_0000_0001);
        assert_eq!(CValue::Float(quiet), CValue::Float(payload));
        assert_ne!(CValue::Float(0.0), CValue::Float(-0.0));
        assert_eq!(
            CValue::List(vec![CValue::Float(quiet)]),
            CValue::List(vec![CValue::Float(quiet)])
        );
        assert_ne!(CValue::Int(1), CValue::Float(1.0));
    }

    /// Duplicate keys are found among few keys and among many.
    /// Steps: look for duplicates in short and long key lists, with NaNs.
    #[test]
    fn finds_duplicate_keys() {
        let ints: Vec<CValue> = (0..100).map(CValue::Int).collect();
        assert_eq!(first_duplicate_key(&ints), None);
        let mut with_dup = ints.clone();
        with_dup.push(CValue::Int(3));
        assert_eq!(first_duplicate_key(&with_dup), Some(100));
        let nans = [
            CValue::Float(f64::NAN),
            CValue::Float(f64::from_bits(0x7ff8_0000_0000_0001)),
        ];
        assert_eq!(first_duplicate_key(&nans), Some(1));
        assert_eq!(first_duplicate_key(&ints[..3]), None);
    }
}
