//! Pull scraping (see ARCHITECTURE.md): the Prometheus scrape configuration
//! ([`config`]), service discovery ([`discovery`]), relabeling ([`relabel`])
//! and scrape targets ([`target`]).

// Lets `with_*` macros name this crate by path in serde attributes, which
// cannot use `$crate`.
extern crate self as scraper;

pub mod config;
pub mod discovery;
pub mod relabel;
pub mod target;
