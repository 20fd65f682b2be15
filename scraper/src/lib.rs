//! Pull scraping (see ARCHITECTURE.md): the Prometheus scrape configuration
//! ([`config`]), service discovery ([`discovery`]), relabeling ([`relabel`]),
//! scrape targets ([`target`]), exposition parsing ([`exposition`]), scrape
//! loops ([`scrape_loop`]), scrape pools ([`pool`]) and the scrape manager
//! running them per configuration ([`manager`]).

// Lets `with_*` macros name this crate by path in serde attributes, which
// cannot use `$crate`.
extern crate self as scraper;

pub mod config;
pub mod discovery;
pub mod exposition;
pub mod manager;
pub mod pool;
pub mod relabel;
pub mod scrape_loop;
pub mod target;
