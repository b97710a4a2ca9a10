//! Paths into a value or a schema (`$.items[3].price`), built only when an
//! error needs one.
//!
//! Checkers and decoders recurse without allocating a path; when they fail
//! they return a [`Located`] error and every level on the way out pushes its
//! own segment. The segments come out leaf first and are reversed once when
//! the error is finished.

use std::fmt::Write;

/// One step from a value (or schema) to a part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A product field or union variant by name: `.name`.
    Field(String),
    /// A list element by position: `[3]`.
    Index(usize),
    /// The key of a map's n-th entry: `<key #n>`.
    MapKey(usize),
    /// The value of a map's n-th entry: `<value #n>`.
    MapValue(usize),
    /// A named part of a schema that is not a field, e.g. `.element`.
    Part(&'static str),
}

/// An error plus the path to where it happened, collected leaf first.
#[derive(Debug)]
pub struct Located<E> {
    /// The segments from the failing place up to the root.
    reversed: Vec<Segment>,
    /// The error at that place.
    pub error: E,
}

impl<E> Located<E> {
    /// An error at the current place.
    pub fn here(error: E) -> Self {
        Located {
            reversed: Vec::new(),
            error,
        }
    }

    /// Adds the segment that leads from the parent to the current place.
    pub fn within(mut self, segment: Segment) -> Self {
        self.reversed.push(segment);
        self
    }

    /// The path from the root, written as `$.a[1]<key #0>`.
    pub fn path(&self) -> String {
        let mut out = String::from("$");
        for segment in self.reversed.iter().rev() {
            // Writing into a String cannot fail.
            let _ = match segment {
                Segment::Field(name) => write!(out, ".{name}"),
                Segment::Index(i) => write!(out, "[{i}]"),
                Segment::MapKey(i) => write!(out, "<key #{i}>"),
                Segment::MapValue(i) => write!(out, "<value #{i}>"),
                Segment::Part(name) => write!(out, ".{name}"),
            };
        }
        out
    }
}

/// Adds a path segment to the error of a result, if any.
pub trait WithinExt<T, E> {
    /// Maps `Err(e)` to `Err(e.within(segment()))`.
    fn within(self, segment: impl FnOnce() -> Segment) -> Result<T, Located<E>>;
}

impl<T, E> WithinExt<T, E> for Result<T, Located<E>> {
    fn within(self, segment: impl FnOnce() -> Segment) -> Result<T, Located<E>> {
        self.map_err(|e| e.within(segment()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments pushed on the way out read root first.
    /// Steps: build an error at a leaf, add segments as recursion would,
    /// and compare the written path.
    #[test]
    fn path_reads_from_the_root() {
        let e = Located::here(())
            .within(Segment::Field("price".into()))
            .within(Segment::Index(3))
            .within(Segment::Field("items".into()));
        assert_eq!(e.path(), "$.items[3].price");
        let e = Located::here(())
            .within(Segment::MapKey(2))
            .within(Segment::MapValue(0));
        assert_eq!(e.path(), "$<value #0><key #2>");
    }
}
