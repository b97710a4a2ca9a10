//! The echo provider's modules: small, typed, and enough to see every kind of Orrery type
//! cross the wire. `orrery dev --demo` serves them next to its local cluster, and the
//! `echo-provider` binary serves them against any cluster.
//!
//! | module | input | output |
//! |---|---|---|
//! | `echo.echo` | `String` | the same `String` |
//! | `echo.greet` | [`Greeting`] (a record) | `String` |
//! | `echo.summarize` | `List<Float>` | [`Summary`] (a record with optional fields) |
//! | `echo.area` | [`Shape`] (a union) | `Float`; a runtime error for negative sizes |

use orrery_sdk::{Module, ModuleError, OrreryType};

/// The namespace the echo modules live in.
pub const NAMESPACE: &str = "echo";

/// The version every echo module declares.
const VERSION: &str = "1.0.0";

/// Whom to greet, and how loudly.
#[derive(Debug, Clone, PartialEq, OrreryType)]
pub struct Greeting {
    /// Who is greeted.
    pub name: String,
    /// Ends the greeting with `!` instead of `.`.
    pub excited: bool,
}

/// What `echo.summarize` says about a list of numbers.
#[derive(Debug, Clone, PartialEq, OrreryType)]
pub struct Summary {
    /// How many numbers there were.
    pub count: i64,
    /// Their mean; absent for an empty list.
    pub mean: Option<f64>,
    /// The largest; absent for an empty list.
    pub max: Option<f64>,
}

/// A plane shape.
#[derive(Debug, Clone, PartialEq, OrreryType)]
pub enum Shape {
    /// A circle of this radius.
    Circle {
        /// The radius.
        radius: f64,
    },
    /// A rectangle.
    Rectangle {
        /// Its width.
        width: f64,
        /// Its height.
        height: f64,
    },
    /// A point, whose area is zero.
    Point,
}

/// Every echo module, ready for [`orrery_sdk::Provider::new`].
pub fn modules() -> Vec<Module> {
    vec![
        Module::typed("echo", VERSION, |text: String| async move { Ok(text) })
            .description("Answers its input unchanged."),
        Module::typed("greet", VERSION, |greeting: Greeting| async move {
            Ok(greet(&greeting))
        })
        .description("Greets someone by name."),
        Module::typed("summarize", VERSION, |numbers: Vec<f64>| async move {
            Ok(summarize(&numbers))
        })
        .description("Counts a list of numbers and gives their mean and maximum."),
        Module::typed("area", VERSION, |shape: Shape| async move { area(&shape) })
            .description("The area of a circle, a rectangle or a point."),
    ]
}

/// `Hello, NAME.` or, excited, `Hello, NAME!`.
pub fn greet(greeting: &Greeting) -> String {
    let end = if greeting.excited { '!' } else { '.' };
    format!("Hello, {}{end}", greeting.name)
}

/// The count, mean and maximum of `numbers`.
pub fn summarize(numbers: &[f64]) -> Summary {
    let count = numbers.len();
    Summary {
        count: count as i64,
        mean: (count > 0).then(|| numbers.iter().sum::<f64>() / count as f64),
        max: numbers.iter().copied().reduce(f64::max),
    }
}

/// The shape's area; a negative size is the caller's mistake, answered as a module error.
pub fn area(shape: &Shape) -> Result<f64, ModuleError> {
    let sizes: &[f64] = match shape {
        Shape::Circle { radius } => &[*radius],
        Shape::Rectangle { width, height } => &[*width, *height],
        Shape::Point => &[],
    };
    if sizes.iter().any(|size| *size < 0.0) {
        return Err(ModuleError::new(format!("negative size in {shape:?}")));
    }
    Ok(match shape {
        Shape::Circle { radius } => std::f64::consts::PI * radius * radius,
        Shape::Rectangle { width, height } => width * height,
        Shape::Point => 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_sdk::types::{CType, CValue};

    #[test]
    fn greetings_end_by_mood() {
        let calm = Greeting {
            name: "Ada".into(),
            excited: false,
        };
        assert_eq!(greet(&calm), "Hello, Ada.");
        let excited = Greeting {
            excited: true,
            ..calm
        };
        assert_eq!(greet(&excited), "Hello, Ada!");
    }

    #[test]
    fn summaries_of_empty_and_full_lists() {
        let empty = summarize(&[]);
        assert_eq!((empty.count, empty.mean, empty.max), (0, None, None));
        let full = summarize(&[1.0, 4.0, 2.5]);
        assert_eq!(full.count, 3);
        assert_eq!(full.mean, Some(2.5));
        assert_eq!(full.max, Some(4.0));
    }

    #[test]
    fn areas_and_refused_negative_sizes() {
        let rectangle = Shape::Rectangle {
            width: 2.0,
            height: 3.5,
        };
        assert_eq!(area(&rectangle).unwrap(), 7.0);
        assert_eq!(area(&Shape::Point).unwrap(), 0.0);
        let circle = area(&Shape::Circle { radius: 1.0 }).unwrap();
        assert!((circle - std::f64::consts::PI).abs() < 1e-12);
        assert!(area(&Shape::Circle { radius: -1.0 }).is_err());
    }

    #[test]
    fn derived_types_are_records_and_unions() {
        assert_eq!(
            Greeting::ctype(),
            CType::Product(vec![
                ("name".into(), CType::String),
                ("excited".into(), CType::Bool)
            ])
        );
        let CType::Union(variants) = Shape::ctype() else {
            panic!("a shape is a union");
        };
        let names: Vec<&str> = variants.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["Circle", "Rectangle", "Point"]);
        assert_eq!(variants[2].1, CType::Product(vec![]));
    }

    #[test]
    fn derived_values_round_trip_and_name_bad_fields() {
        let shape = Shape::Rectangle {
            width: 1.5,
            height: 2.0,
        };
        assert_eq!(
            Shape::from_value(shape.clone().into_value()).unwrap(),
            shape
        );
        let summary = summarize(&[3.0]);
        assert_eq!(
            Summary::from_value(summary.clone().into_value()).unwrap(),
            summary
        );

        let wrong = CValue::union(
            "Circle",
            CValue::product([("radius", CValue::String("wide".into()))]),
        );
        let error = Shape::from_value(wrong).unwrap_err();
        assert!(
            error.to_string().contains("Circle.radius"),
            "the error names the field: {error}"
        );
        let unknown = CValue::union("Hexagon", CValue::product::<&str>([]));
        assert!(Shape::from_value(unknown).is_err());
    }
}
