//! Pull scraping (see ARCHITECTURE.md): the Prometheus scrape configuration
//! ([`config`]), service discovery ([`discovery`]), relabeling ([`relabel`])
//! and scrape targets ([`target`]).

pub mod config;
pub mod discovery;
pub mod relabel;
pub mod target;
