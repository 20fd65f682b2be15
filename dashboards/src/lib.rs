//! dashboards (see ARCHITECTURE.md).
