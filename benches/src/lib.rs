//! benches (see ARCHITECTURE.md).
