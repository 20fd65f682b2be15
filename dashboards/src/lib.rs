//! Sextant's dashboards: server-side charts and the Grafana dashboard files.
//!
//! - [`chart`]: a plain chart model ([`chart::Chart`]: title, unit, time range,
//!   labelled series of `(t_ms, f64)` points) rendered to PNG or SVG bytes with
//!   plotters. Pure: no IO, no clock, no system fonts (DejaVu Sans is embedded).
//! - [`recommendation`]: the chart shapes of the autoscaler's output (VPA usage
//!   against its bounds and the current request; HPA backtest replicas against
//!   the metric and its target), built on the same model.
//! - `grafana/*.json`: dashboards as data, kept honest by `tests/lint.rs`.

pub mod chart;
pub mod error;
pub mod recommendation;

pub use error::{Error, Result};
