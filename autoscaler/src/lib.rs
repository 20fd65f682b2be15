//! Sextant's autoscaling recommender: Kubernetes HPA replica counts and VPA resource
//! requests computed exactly as the Kubernetes controllers compute them, with a
//! plain-language explanation of every number.
//!
//! Layout (ARCHITECTURE.md): [`model`] holds the Kubernetes-shaped inputs, [`hpa`] and
//! [`vpa`] are pure logic (no IO, time passed in or read from a `tsdb::clock::Clock`),
//! [`quantity`] parses and prints Kubernetes quantities, [`explain`] renders
//! explanations, and [`vectors`] replays the reference vectors of the Kubernetes tests.

pub mod backtest;
pub mod controller;
pub mod error;
pub mod explain;
pub mod hpa;
pub mod model;
pub mod quantity;
pub mod recommender;
pub mod vectors;
pub mod vpa;

pub use error::{Error, Result};
