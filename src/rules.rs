//! Recording and alerting rules, as Prometheus evaluates them.
//!
//! - [`file`]: the rules-file format and its validation (`rulefmt`);
//! - [`template`]: Go templates in alert labels and annotations;
//! - [`recording`], [`alerting`]: what one rule does with its query's
//!   result (output series; the alert state machine and `for` restore);
//! - [`group`]: rules evaluated in order at one timestamp, stale markers,
//!   the group's schedule;
//! - [`manager`]: the groups of the `rule_files`, each in its own task,
//!   replaced on reload.
//!
//! Queries go through [`tsdb::promql::QueryBackend`]; output goes through
//! [`tsdb::storage::Appender`]; time comes from a [`tsdb::clock::Clock`].

pub mod alerting;
pub mod file;
pub mod group;
pub mod manager;
pub mod metrics;
pub mod notifier;
pub mod recording;
pub mod template;
pub mod unittest;
mod yaml;
