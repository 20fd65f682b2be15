//! Exposition parsing: the Prometheus text format 0.0.4 (and 1.0.0, which
//! only adds quoted UTF-8 names) and OpenMetrics 1.0, in one zero-copy parser.
//!
//! The wire formats, and exactly what this parser accepts where the formats
//! leave room, are written down in `scraper/docs/format/exposition.md`.
//!
//! Two modes:
//! - [`Parser::new`] accepts what Prometheus 3's scrape parsers
//!   (`model/textparse`) accept, so a body Prometheus stores is a body we
//!   store, with the same values.
//! - [`Parser::strict`] is the reference reading used by
//!   `sextant check metrics`: the lexical rules of the Go `expfmt` text parser
//!   for the text format, and of the OpenMetrics reference parser for
//!   OpenMetrics. [`lint::check`] adds the family-level rules on top.
//!
//! Entries borrow the body; only names and values with escapes are copied.
//! A malformed body is an error naming the line and what was expected, never
//! a panic and never a silently shortened result.

mod float;
pub mod lint;
mod negotiate;
mod parser;

pub use float::format_openmetrics_float;
pub use negotiate::{ACCEPT_HEADER, ContentTypeError, accept_header, format_for_content_type};
pub use parser::{Exemplar, LabelPairs, Parser, Sample};

use std::borrow::Cow;
use std::fmt;

/// The exposition format of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain`), including the 1.0.0
    /// quoted-name syntax.
    Text,
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "Prometheus text 0.0.4",
            Format::OpenMetrics => "OpenMetrics 1.0",
        })
    }
}

/// The type a `# TYPE` line declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    /// OpenMetrics only.
    GaugeHistogram,
    Summary,
    /// OpenMetrics only.
    Info,
    /// OpenMetrics only.
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format, and the type of
    /// samples without a `# TYPE`.
    #[default]
    Unknown,
}

impl MetricType {
    /// The type's keyword in `format`.
    pub fn as_str(self, format: Format) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => match format {
                Format::Text => "untyped",
                Format::OpenMetrics => "unknown",
            },
        }
    }

    /// Parses a `# TYPE` keyword of `format`.
    pub fn parse(keyword: &str, format: Format) -> Option<MetricType> {
        Some(match (keyword, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text) | ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }
}

/// One line of an exposition (a label value may span lines in the text
/// format; the entry then starts at its first line).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`, unescaped.
    Help {
        metric: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    /// `# TYPE name type`.
    Type {
        metric: Cow<'a, str>,
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics only).
    Unit {
        metric: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
    /// Any other `#` line (text format only), without the `#`.
    Comment(Cow<'a, str>),
    Sample(Sample<'a>),
}

/// A malformed body: the line (1-based) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole body, returning its entries or the first error.
///
/// # Errors
/// The first malformed line.
pub fn parse(body: &[u8], format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    Parser::new(body, format).collect()
}

#[cfg(test)]
mod tests;
