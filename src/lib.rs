//! The `sextant` server: composition of the workspace crates, the HTTP API and
//! the command line. Nothing depends on this package.

pub mod api;
pub mod backend;
pub mod cli;
pub mod client;
pub mod config;
pub mod float;
pub mod kubernetes;
pub mod metrics;
pub mod metrics_api;
pub mod remote;
pub mod remote_backend;
pub mod rules;
pub mod server;
pub mod shutdown;
pub mod ui;
pub mod web;
