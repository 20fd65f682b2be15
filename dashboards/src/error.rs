//! The crate's one error type.

use crate::chart::{MAX_SIDE, MIN_HEIGHT, MIN_WIDTH};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "chart size {width}x{height} is outside {MIN_WIDTH}x{MIN_HEIGHT} ..= {MAX_SIDE}x{MAX_SIDE} pixels"
    )]
    InvalidSize { width: u32, height: u32 },
    #[error("invalid chart time range {start}..{end} (ms): {reason}")]
    InvalidTimeRange {
        start: i64,
        end: i64,
        reason: &'static str,
    },
    #[error("unknown chart format {0:?} (want png or svg)")]
    UnknownFormat(String),
    #[error("unknown chart unit {0:?}")]
    UnknownUnit(String),
    /// The embedded font did not load; a build defect, never caused by input.
    #[error("the embedded chart font failed to load")]
    Font,
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("encoding the chart as PNG failed: {0}")]
    Png(#[from] png::EncodingError),
}
