//! autoscaler (see ARCHITECTURE.md).
