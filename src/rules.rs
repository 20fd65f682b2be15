//! Recording and alerting rules, as Prometheus evaluates them.
//!
//! - [`file`]: the rules-file format and its validation (`rulefmt`);
//! - [`template`]: Go templates in alert labels and annotations.

pub mod file;
pub mod template;
mod yaml;
