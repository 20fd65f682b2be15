//! scraper (see ARCHITECTURE.md).
