//! Time-series line charts: a plain model in, PNG or SVG bytes out.
//!
//! The model ([`Chart`], [`Series`]) knows nothing about the query engine, so
//! anything with timestamps and numbers can be charted. [`render`] is pure:
//! the same chart always gives the same bytes. Text uses DejaVu Sans, embedded
//! in the binary (`assets/DejaVuSans.ttf`, license beside it), so no system
//! font library is needed.
//!
//! Rules the renderer follows:
//! - The x axis is time in UTC with ticks on round times suited to the range
//!   (seconds to years); the caption under it names the whole range.
//! - The y axis ticks are round numbers in the chart's [`Unit`] (bytes with
//!   binary prefixes, durations in ns..d, percent, plain numbers with SI
//!   prefixes).
//! - NaN (including Prometheus's staleness marker) and ±Inf values are gaps:
//!   the line breaks there. With [`Chart::step_ms`] set, points further apart
//!   than one and a half steps are not joined either (the query returned
//!   nothing between).
//! - A chart without a single finite point in its range renders a "No data"
//!   chart, never an error.
//! - The legend lists series in order, truncates long labels with "…", and
//!   ends with "+N more" when the series do not fit.

mod bars;
mod draw;
mod legend;
mod promql;
mod text;
mod time_axis;
mod value_axis;

use std::fmt;
use std::str::FromStr;

use tsdb::model::TimeRange;

use crate::error::{Error, Result};

pub use bars::{BarChart, BarGroup, render_bars};
pub use promql::legend_labels;
pub use value_axis::format_value;

/// Smallest accepted chart width in pixels.
pub const MIN_WIDTH: u32 = 160;
/// Smallest accepted chart height in pixels.
pub const MIN_HEIGHT: u32 = 120;
/// Largest accepted width or height in pixels (bounds the bitmap's memory).
pub const MAX_SIDE: u32 = 4096;
/// Timestamps further than this from the epoch (about 247,000 years, within
/// what the calendar code can name) are rejected, so time arithmetic cannot
/// overflow.
pub const MAX_ABS_TIMESTAMP_MS: i64 = 7_800_000_000_000_000;

/// One chart panel: a title, a time range and labelled series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    /// What the values measure; decides y-axis ticks and labels.
    pub unit: Unit,
    /// The x axis, both ends inclusive, in milliseconds since the epoch.
    /// Points outside it are not drawn.
    pub range: TimeRange,
    /// The resolution of the data (a range query's step): points further
    /// apart than one and a half steps are not joined, except in step series.
    /// `None` joins every pair of finite neighbours.
    pub step_ms: Option<i64>,
    /// Fixed lower end of the y axis (for example 0); `None` fits the data.
    pub y_min: Option<f64>,
    /// Fixed upper end of the y axis; `None` fits the data.
    pub y_max: Option<f64>,
    pub series: Vec<Series>,
}

impl Chart {
    /// A chart without series; add them with [`Chart::series`].
    pub fn new(title: impl Into<String>, unit: Unit, range: TimeRange) -> Self {
        Chart {
            title: title.into(),
            unit,
            range,
            step_ms: None,
            y_min: None,
            y_max: None,
            series: Vec::new(),
        }
    }

    pub fn step_ms(mut self, step_ms: i64) -> Self {
        self.step_ms = Some(step_ms);
        self
    }

    pub fn y_min(mut self, y_min: f64) -> Self {
        self.y_min = Some(y_min);
        self
    }

    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }
}

/// One line: a legend label and its points `(t_ms, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(i64, f64)>,
    pub style: LineStyle,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(i64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            style: LineStyle::default(),
        }
    }

    pub fn color(mut self, color: Rgb) -> Self {
        self.style.color = Some(color);
        self
    }

    pub fn dashed(mut self) -> Self {
        self.style.dashed = true;
        self
    }

    /// Holds each value until the next point (replica counts, requests).
    pub fn steps(mut self) -> Self {
        self.style.steps = true;
        self
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineStyle {
    /// `None` takes the next colour of [`PALETTE`] by series position.
    pub color: Option<Rgb>,
    pub dashed: bool,
    /// Draw as a step function: a value holds until the next point.
    pub steps: bool,
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// The colour as SVG writes it, `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }
}

/// Series colours by position (Grafana's classic palette), repeated when
/// there are more series.
pub const PALETTE: [Rgb; 12] = [
    Rgb(0x1F, 0x78, 0xC1),
    Rgb(0xEF, 0x84, 0x3C),
    Rgb(0x50, 0x86, 0x42),
    Rgb(0xE2, 0x4D, 0x42),
    Rgb(0x70, 0x5D, 0xA0),
    Rgb(0xCC, 0xA3, 0x00),
    Rgb(0x6E, 0xD0, 0xE0),
    Rgb(0xBA, 0x43, 0xA9),
    Rgb(0x7E, 0xB2, 0x6D),
    Rgb(0xC1, 0x5C, 0x17),
    Rgb(0x0A, 0x43, 0x7C),
    Rgb(0x89, 0x0F, 0x02),
];

/// The colour a series is drawn in.
pub fn series_color(index: usize, style: &LineStyle) -> Rgb {
    style.color.unwrap_or(PALETTE[index % PALETTE.len()])
}

/// What the values measure. Names follow Grafana's unit ids where one exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Numbers with SI prefixes: 1.5k, 20M, 5m (milli).
    #[default]
    Plain,
    /// Bytes with binary prefixes: 512 MiB, 1.5 GiB.
    Bytes,
    /// Durations: 250 ms, 30 s, 2 h.
    Seconds,
    /// Values already in percent (0-100).
    Percent,
    /// Ratios (0.0-1.0) shown as percent.
    PercentUnit,
}

impl FromStr for Unit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "plain" | "short" | "none" => Ok(Unit::Plain),
            "bytes" => Ok(Unit::Bytes),
            "s" | "seconds" => Ok(Unit::Seconds),
            "percent" => Ok(Unit::Percent),
            "percentunit" | "ratio" => Ok(Unit::PercentUnit),
            other => Err(Error::UnknownUnit(other.to_string())),
        }
    }
}

impl Unit {
    /// A guess from a Prometheus metric name's unit suffix (naming
    /// conventions: `_bytes`, `_seconds`, `_ratio`), for charts of arbitrary
    /// queries. Counters and sums keep the unit of what they count (a rate of
    /// `_bytes_total` is bytes per second); `_count` is plain.
    pub fn guess_from_metric_name(name: &str) -> Unit {
        if name.ends_with("_count") {
            return Unit::Plain;
        }
        let base = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_bucket"))
            .or_else(|| name.strip_suffix("_total"))
            .unwrap_or(name);
        if base.ends_with("_bytes") {
            Unit::Bytes
        } else if base.ends_with("_seconds") {
            Unit::Seconds
        } else if base.ends_with("_ratio") {
            Unit::PercentUnit
        } else {
            Unit::Plain
        }
    }
}

/// The output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The HTTP `Content-Type` of the encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            other => Err(Error::UnknownFormat(other.to_string())),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Png => "png",
            Format::Svg => "svg",
        })
    }
}

/// Image size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Default for Size {
    fn default() -> Self {
        Size {
            width: 800,
            height: 400,
        }
    }
}

impl Size {
    pub fn new(width: u32, height: u32) -> Self {
        Size { width, height }
    }

    fn validate(self) -> Result<()> {
        let fits = (MIN_WIDTH..=MAX_SIDE).contains(&self.width)
            && (MIN_HEIGHT..=MAX_SIDE).contains(&self.height);
        if fits {
            Ok(())
        } else {
            Err(Error::InvalidSize {
                width: self.width,
                height: self.height,
            })
        }
    }
}

/// Renders one chart.
///
/// # Errors
/// [`Error::InvalidSize`] outside [`MIN_WIDTH`]x[`MIN_HEIGHT`] ..=
/// [`MAX_SIDE`]; [`Error::InvalidTimeRange`] when the range ends before it
/// starts or lies beyond [`MAX_ABS_TIMESTAMP_MS`]. Data never causes an error:
/// a chart without finite points renders as "No data".
pub fn render(chart: &Chart, format: Format, size: Size) -> Result<Vec<u8>> {
    render_panels(std::slice::from_ref(chart), format, size)
}

/// Renders charts stacked vertically in one image, each in an equal share of
/// the height (a replica timeline above the metric that drove it, say).
/// No panels render one "No data" panel.
///
/// # Errors
/// As [`render`]; the size applies to the whole image.
pub fn render_panels(panels: &[Chart], format: Format, size: Size) -> Result<Vec<u8>> {
    size.validate()?;
    for panel in panels {
        validate_range(panel.range)?;
    }
    draw::render(panels, format, size)
}

/// The resolution charts of `range` use unless told otherwise: about 250
/// points, at least one second (the Prometheus UI's default).
pub fn default_step_ms(range: TimeRange) -> i64 {
    (range.end.saturating_sub(range.start) / 250 / 1000 * 1000).max(1000)
}

fn validate_range(range: TimeRange) -> Result<()> {
    let invalid = |reason| Error::InvalidTimeRange {
        start: range.start,
        end: range.end,
        reason,
    };
    if range.end < range.start {
        return Err(invalid("the end is before the start"));
    }
    let representable = -MAX_ABS_TIMESTAMP_MS..=MAX_ABS_TIMESTAMP_MS;
    if !representable.contains(&range.start) || !representable.contains(&range.end) {
        return Err(invalid("beyond the representable dates"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_from_grafana_ids() {
        assert_eq!("bytes".parse::<Unit>().unwrap(), Unit::Bytes);
        assert_eq!("s".parse::<Unit>().unwrap(), Unit::Seconds);
        assert_eq!("percentunit".parse::<Unit>().unwrap(), Unit::PercentUnit);
        assert_eq!("short".parse::<Unit>().unwrap(), Unit::Plain);
        assert!(matches!(
            "furlongs".parse::<Unit>(),
            Err(Error::UnknownUnit(u)) if u == "furlongs"
        ));
    }

    #[test]
    fn unit_guess_follows_metric_naming_conventions() {
        let cases = [
            ("process_resident_memory_bytes", Unit::Bytes),
            ("node_network_receive_bytes_total", Unit::Bytes),
            ("process_cpu_seconds_total", Unit::Seconds),
            ("http_request_duration_seconds_sum", Unit::Seconds),
            ("http_request_duration_seconds_count", Unit::Plain),
            ("http_requests_total", Unit::Plain),
            ("cache_hit_ratio", Unit::PercentUnit),
            ("up", Unit::Plain),
        ];
        for (name, unit) in cases {
            assert_eq!(Unit::guess_from_metric_name(name), unit, "{name}");
        }
    }

    #[test]
    fn formats_parse_and_name_their_content_type() {
        assert_eq!("png".parse::<Format>().unwrap().content_type(), "image/png");
        assert_eq!(
            "svg".parse::<Format>().unwrap().content_type(),
            "image/svg+xml"
        );
        assert!("gif".parse::<Format>().is_err());
    }

    #[test]
    fn sizes_and_ranges_are_validated() {
        let chart = Chart::new("t", Unit::Plain, TimeRange::new(0, 1000));
        assert!(matches!(
            render(&chart, Format::Svg, Size::new(10, 400)),
            Err(Error::InvalidSize { width: 10, .. })
        ));
        assert!(matches!(
            render(&chart, Format::Png, Size::new(800, MAX_SIDE + 1)),
            Err(Error::InvalidSize { .. })
        ));
        let backwards = Chart::new("t", Unit::Plain, TimeRange::new(1000, 0));
        assert!(matches!(
            render(&backwards, Format::Svg, Size::default()),
            Err(Error::InvalidTimeRange { .. })
        ));
        let huge = Chart::new("t", Unit::Plain, TimeRange::new(i64::MIN, i64::MAX));
        assert!(matches!(
            render(&huge, Format::Svg, Size::default()),
            Err(Error::InvalidTimeRange { .. })
        ));
    }

    #[test]
    fn default_step_gives_about_250_points() {
        assert_eq!(default_step_ms(TimeRange::new(0, 3_600_000)), 14_000);
        assert_eq!(default_step_ms(TimeRange::new(0, 60_000)), 1_000);
        assert_eq!(default_step_ms(TimeRange::new(0, 0)), 1_000);
        assert_eq!(
            default_step_ms(TimeRange::new(i64::MIN, i64::MAX)),
            i64::MAX / 250 / 1000 * 1000
        );
    }

    #[test]
    fn series_take_palette_colours_unless_given_one() {
        let style = LineStyle::default();
        assert_eq!(series_color(0, &style), PALETTE[0]);
        assert_eq!(series_color(PALETTE.len() + 1, &style), PALETTE[1]);
        let red = LineStyle {
            color: Some(Rgb(255, 0, 0)),
            ..LineStyle::default()
        };
        assert_eq!(series_color(3, &red), Rgb(255, 0, 0));
        assert_eq!(Rgb(255, 0, 10).hex(), "#FF000A");
    }
}
