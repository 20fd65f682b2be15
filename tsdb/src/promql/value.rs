//! The values a query returns: [`Value`] with its [`Scalar`], string,
//! [`Vector`] and [`Matrix`] forms, as Prometheus defines them.

use std::fmt;

use crate::model::Labels;

/// A point of a series: a millisecond timestamp and a float value.
pub type Point = crate::model::Sample;

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    String(StringValue),
    /// An instant vector: one sample per series at the evaluation time.
    Vector(Vector),
    /// A range vector, or the result of a range query.
    Matrix(Matrix),
}

impl Value {
    /// The name Prometheus uses for the type in the API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A single number at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalar {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// A string literal result at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct StringValue {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: String,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch: the evaluation time.
    pub t: i64,
    pub v: f64,
}

/// An instant vector.
pub type Vector = Vec<Sample>;

/// One series of a range vector with its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// A range vector: series sorted by labels for range queries.
pub type Matrix = Vec<Series>;

impl fmt::Display for Value {
    /// A compact text form for logs and the command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(s) => write!(f, "scalar: {} @[{}]", s.v, s.t),
            Value::String(s) => write!(f, "string: {:?} @[{}]", s.v, s.t),
            Value::Vector(vector) => {
                for sample in vector {
                    writeln!(f, "{} => {} @[{}]", sample.labels, sample.v, sample.t)?;
                }
                Ok(())
            }
            Value::Matrix(matrix) => {
                for series in matrix {
                    write!(f, "{} =>", series.labels)?;
                    for point in &series.points {
                        write!(f, " {} @[{}]", point.v, point.t)?;
                    }
                    writeln!(f)?;
                }
                Ok(())
            }
        }
    }
}
