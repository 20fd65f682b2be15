//! Sextant's time-series database: the data model, the storage boundary
//! ([`storage`]), and the clock every time-driven component reads.
//!
//! Architecture invariant: this crate knows nothing about HTTP, JSON, tokio or
//! Kubernetes. Everything here is synchronous.

pub mod agent;
pub mod block;
pub mod chunk;
pub mod clock;
pub mod db;
pub mod error;
pub mod head;
pub mod index;
pub mod model;
pub mod promql;
pub mod storage;
pub mod wal;

pub use error::{Error, Result};
