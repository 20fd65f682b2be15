//! The x axis: ticks on round UTC times and labels suited to the range.

use std::ops::Range;

use chrono::DateTime;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, KeyPointWeight, Ranged};
use tsdb::model::TimeRange;

use super::value_axis::thin_out;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const YEAR: i64 = 365 * DAY;

/// Tick spacings, smallest first; longer ranges use multiples of a year.
const STEPS: [i64; 35] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    60 * DAY,
    90 * DAY,
    180 * DAY,
    YEAR,
];

/// An instant range is widened by this much on each side.
const INSTANT_PAD: i64 = 30 * SECOND;

/// The x axis of one chart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeAxis {
    pub start: i64,
    pub end: i64,
    /// Spacing of `ticks` in milliseconds.
    pub step: i64,
    pub ticks: Vec<i64>,
    multi_day: bool,
    multi_year: bool,
}

impl TimeAxis {
    /// Ticks over `range` (validated: `start <= end`, within the
    /// representable dates), at most `max_ticks` of them (at least two).
    pub fn fit(range: TimeRange, max_ticks: usize) -> TimeAxis {
        let (start, end) = if range.start == range.end {
            (range.start - INSTANT_PAD, range.end + INSTANT_PAD)
        } else {
            (range.start, range.end)
        };
        let span = end - start;
        let intervals = max_ticks.max(2) as i64 - 1;
        let step = STEPS
            .iter()
            .copied()
            .find(|&step| span / step <= intervals)
            .unwrap_or_else(|| YEAR * nice_multiple(span / YEAR / intervals + 1));
        let mut tick = start.div_euclid(step) * step;
        if tick < start {
            tick += step;
        }
        let mut ticks = Vec::new();
        while tick <= end {
            ticks.push(tick);
            tick += step;
        }
        let date = |t: i64| DateTime::from_timestamp_millis(t).map(|d| d.date_naive());
        let year = |t: i64| date(t).map(|d| d.format("%Y").to_string());
        TimeAxis {
            start,
            end,
            step,
            ticks,
            multi_day: date(start) != date(end),
            multi_year: year(start) != year(end),
        }
    }

    /// A tick label: as precise as the spacing needs, with the date where
    /// a day begins when the range spans days.
    pub fn label(&self, t: i64) -> String {
        let format = if self.step < SECOND {
            "%H:%M:%S%.3f"
        } else if self.step < MINUTE {
            "%H:%M:%S"
        } else if self.step < DAY && !(self.multi_day && t.rem_euclid(DAY) == 0) {
            "%H:%M"
        } else if self.multi_year {
            "%Y-%m-%d"
        } else {
            "%m-%d"
        };
        format_utc(t, format)
    }

    /// The whole range in words, shown under the axis: tick labels alone
    /// do not say which day or time zone.
    pub fn caption(&self) -> String {
        let from = format_utc(self.start, "%Y-%m-%d %H:%M:%S");
        let to = if self.multi_day {
            format_utc(self.end, "%Y-%m-%d %H:%M:%S")
        } else {
            format_utc(self.end, "%H:%M:%S")
        };
        format!("{from} – {to} UTC")
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … that is at least `n`.
fn nice_multiple(n: i64) -> i64 {
    let mut base = 1;
    loop {
        for m in [1, 2, 5] {
            if m * base >= n {
                return m * base;
            }
        }
        base *= 10;
    }
}

fn format_utc(t: i64, format: &str) -> String {
    match DateTime::from_timestamp_millis(t) {
        Some(time) => time.format(format).to_string(),
        None => t.to_string(),
    }
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = i64;

    fn map(&self, value: &i64, (from, to): (i32, i32)) -> i32 {
        let span = (self.end - self.start) as f64;
        let fraction =
            (((*value).clamp(self.start, self.end) - self.start) as f64 / span).clamp(0.0, 1.0);
        from + (f64::from(to - from) * fraction).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<i64> {
        match hint.weight() {
            KeyPointWeight::Any => Vec::new(),
            KeyPointWeight::Bold => thin_out(&self.ticks, hint.max_num_points()),
        }
    }

    fn range(&self) -> Range<i64> {
        self.start..self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-02T00:00:00Z.
    const JAN_2: i64 = 1_704_153_600_000;

    fn labels(axis: &TimeAxis) -> Vec<String> {
        axis.ticks.iter().map(|&t| axis.label(t)).collect()
    }

    #[test]
    fn an_hour_gets_ten_minute_ticks() {
        let axis = TimeAxis::fit(
            TimeRange::new(
                JAN_2 + 10 * HOUR + 3 * MINUTE,
                JAN_2 + 11 * HOUR + 3 * MINUTE,
            ),
            8,
        );
        assert_eq!(axis.step, 10 * MINUTE);
        assert_eq!(
            labels(&axis),
            ["10:10", "10:20", "10:30", "10:40", "10:50", "11:00"]
        );
        assert_eq!(axis.caption(), "2024-01-02 10:03:00 – 11:03:00 UTC");
    }

    #[test]
    fn a_few_minutes_get_seconds() {
        let axis = TimeAxis::fit(TimeRange::new(JAN_2, JAN_2 + 50 * SECOND), 6);
        assert_eq!(axis.step, 10 * SECOND);
        assert_eq!(labels(&axis)[..2], ["00:00:00", "00:00:10"]);
        let sub_second = TimeAxis::fit(TimeRange::new(JAN_2, JAN_2 + 900), 6);
        assert_eq!(sub_second.step, 200);
        assert_eq!(sub_second.label(JAN_2 + 200), "00:00:00.200");
    }

    #[test]
    fn two_days_show_the_date_at_midnight() {
        let axis = TimeAxis::fit(
            TimeRange::new(JAN_2 + 20 * HOUR, JAN_2 + DAY + 20 * HOUR),
            6,
        );
        assert_eq!(axis.step, 6 * HOUR);
        assert_eq!(labels(&axis), ["01-03", "06:00", "12:00", "18:00"]);
        assert_eq!(
            axis.caption(),
            "2024-01-02 20:00:00 – 2024-01-03 20:00:00 UTC"
        );
    }

    #[test]
    fn long_ranges_use_dates_and_years() {
        let month = TimeAxis::fit(TimeRange::new(JAN_2, JAN_2 + 30 * DAY), 8);
        assert_eq!(month.step, 7 * DAY);
        assert!(
            labels(&month).iter().all(|l| l.len() == 5),
            "{:?}",
            labels(&month)
        );
        let years = TimeAxis::fit(TimeRange::new(JAN_2 - 3 * YEAR, JAN_2), 8);
        assert_eq!(years.step, 180 * DAY);
        assert!(
            labels(&years)[0].starts_with("2021-"),
            "{:?}",
            labels(&years)
        );
        let ages = TimeAxis::fit(
            TimeRange::new(-7_000_000_000_000_000, 7_000_000_000_000_000),
            8,
        );
        assert!(ages.ticks.len() <= 8 && ages.ticks.len() >= 2, "{ages:?}");
    }

    #[test]
    fn an_instant_is_widened() {
        let axis = TimeAxis::fit(TimeRange::new(JAN_2, JAN_2), 8);
        assert_eq!(
            (axis.start, axis.end),
            (JAN_2 - 30 * SECOND, JAN_2 + 30 * SECOND)
        );
        assert!(axis.ticks.contains(&JAN_2));
    }

    #[test]
    fn negative_timestamps_align_too() {
        let axis = TimeAxis::fit(TimeRange::new(-HOUR - 1, 0), 8);
        assert_eq!(axis.ticks.first(), Some(&-HOUR));
        assert_eq!(axis.label(-HOUR), "23:00");
    }

    #[test]
    fn map_is_linear_and_clamped() {
        let axis = TimeAxis::fit(TimeRange::new(0, 1000), 5);
        assert_eq!(axis.map(&500, (0, 100)), 50);
        assert_eq!(axis.map(&-5, (0, 100)), 0);
        assert_eq!(axis.map(&5000, (0, 100)), 100);
    }
}
