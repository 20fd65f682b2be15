//! Helpers shared by the integration tests; each test binary uses a part.
#![allow(dead_code)]

pub mod kube_api;
pub mod memory;
pub mod prometheus;
pub mod server;
