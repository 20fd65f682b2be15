//! Drawing a validated chart with plotters onto a bitmap or SVG backend.
//!
//! plotters maps coordinates and draws lines; grid, axes and every piece of
//! text are drawn here (text through [`Label`], so bitmaps get correctly
//! spaced glyphs).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::legend::{self, GAP, Legend, SWATCH};
use super::text::{self, Label, TextMode};
use super::time_axis::TimeAxis;
use super::value_axis::ValueAxis;
use super::{Chart, Format, Rgb, Series, Size, series_color};
use crate::error::{Error, Result};

const TITLE_SIZE: f64 = 17.0;
const TEXT_SIZE: f64 = 13.0;
const NO_DATA_SIZE: f64 = 26.0;
const TITLE_HEIGHT: u32 = 30;
const LEGEND_ROW: u32 = 18;
/// Share of a panel's height the legend may take.
const LEGEND_SHARE: f64 = 0.25;
const MARGIN: u32 = 10;
/// Below the plot: tick labels, then the range caption.
const X_LABEL_HEIGHT: u32 = 38;
const LINE_WIDTH: u32 = 2;

const TEXT: RGBColor = RGBColor(0x20, 0x20, 0x20);
const MUTED: RGBColor = RGBColor(0x6A, 0x6A, 0x6A);
/// Grid lines; tests find them by this colour.
pub(crate) const GRID: RGBColor = RGBColor(0xE2, 0xE2, 0xE2);
/// The two axis lines.
pub(crate) const AXIS: RGBColor = RGBColor(0x80, 0x80, 0x80);

pub(super) fn render(panels: &[Chart], format: Format, size: Size) -> Result<Vec<u8>> {
    text::ensure_loaded()?;
    let dimensions = (size.width, size.height);
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, dimensions).into_drawing_area();
                Canvas::new(&root, TextMode::Native).draw_panels(panels)?;
                root.present().map_err(draw_error)?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut rgb = vec![0u8; size.width as usize * size.height as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, dimensions).into_drawing_area();
                Canvas::new(&root, TextMode::Raster).draw_panels(panels)?;
                root.present().map_err(draw_error)?;
            }
            encode_png(&rgb, size)
        }
    }
}

pub(super) fn encode_png(rgb: &[u8], size: Size) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, size.width, size.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(png)
}

fn draw_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> Error {
    Error::Draw(error.to_string())
}

fn rgb(color: Rgb) -> RGBColor {
    RGBColor(color.0, color.1, color.2)
}

/// A drawing area and how text goes onto it.
struct Canvas<'a, DB: DrawingBackend> {
    area: &'a DrawingArea<DB, Shift>,
    mode: TextMode,
}

impl<'a, DB: DrawingBackend> Canvas<'a, DB> {
    fn new(area: &'a DrawingArea<DB, Shift>, mode: TextMode) -> Self {
        Canvas { area, mode }
    }

    fn size(&self) -> (u32, u32) {
        self.area.dim_in_pixel()
    }

    /// Text at `position` (relative to this area), `anchor` saying which
    /// point of the text's box sits there.
    fn text(
        &self,
        text: impl Into<String>,
        position: (i32, i32),
        size: f64,
        color: RGBColor,
        anchor: (HPos, VPos),
    ) -> Result<()> {
        self.area
            .draw(&Label {
                text: text.into(),
                position,
                size,
                color,
                anchor,
                mode: self.mode,
            })
            .map_err(draw_error)
    }

    fn line(&self, points: Vec<(i32, i32)>, style: ShapeStyle) -> Result<()> {
        self.area
            .draw(&PathElement::new(points, style))
            .map_err(draw_error)
    }

    /// `position` in backend pixels made relative to this area.
    fn relative(&self, (x, y): (i32, i32)) -> (i32, i32) {
        let (base_x, base_y) = self.area.get_base_pixel();
        (x - base_x, y - base_y)
    }

    fn draw_panels(&self, panels: &[Chart]) -> Result<()> {
        self.area.fill(&WHITE).map_err(draw_error)?;
        if panels.is_empty() {
            return self.draw_no_data(&[]);
        }
        for (area, chart) in self.area.split_evenly((panels.len(), 1)).iter().zip(panels) {
            Canvas::new(area, self.mode).draw_panel(chart)?;
        }
        Ok(())
    }

    fn draw_panel(&self, chart: &Chart) -> Result<()> {
        let (width, height) = self.size();
        let title = legend::truncate(&chart.title, width.saturating_sub(2 * MARGIN), |t| {
            text::measure(t, TITLE_SIZE)
        });
        let title_center = (width as i32 / 2, TITLE_HEIGHT as i32 / 2);
        self.text(
            title,
            title_center,
            TITLE_SIZE,
            TEXT,
            (HPos::Center, VPos::Center),
        )?;
        let body = self.area.margin(TITLE_HEIGHT, 0, 0, 0);
        let body = Canvas::new(&body, self.mode);

        let full_range = TimeAxis::fit(chart.range, 2);
        let lines: Vec<Vec<Vec<(i64, f64)>>> = chart
            .series
            .iter()
            .map(|series| segments(series, (full_range.start, full_range.end), chart.step_ms))
            .collect();
        let Some(extremes) = extremes(&lines) else {
            let reason = if chart.series.is_empty() {
                "the query returned no series".to_string()
            } else {
                format!(
                    "{} series, none with a finite value in range",
                    chart.series.len()
                )
            };
            return body.draw_no_data(&[&reason, &full_range.caption()]);
        };

        let labels: Vec<&str> = chart.series.iter().map(|s| s.label.as_str()).collect();
        let max_rows = ((f64::from(height) * LEGEND_SHARE) as u32 / LEGEND_ROW).max(1) as usize;
        let legend = legend::layout(&labels, width.saturating_sub(2 * MARGIN), max_rows, |t| {
            text::measure(t, TEXT_SIZE)
        });
        let legend_height = legend.rows() as u32 * LEGEND_ROW + 4;
        let (_, body_height) = body.size();
        let (plot_area, legend_area) = body
            .area
            .split_vertically(body_height.saturating_sub(legend_height));

        let (plot_width, plot_height) = plot_area.dim_in_pixel();
        let time_axis = TimeAxis::fit(chart.range, (plot_width / 110).max(2) as usize);
        let value_axis = ValueAxis::fit(
            chart.unit,
            extremes,
            chart.y_min,
            chart.y_max,
            (plot_height.saturating_sub(X_LABEL_HEIGHT) / 40).max(2) as usize,
        );
        let y_labels: Vec<(f64, String)> = value_axis
            .ticks
            .iter()
            .map(|&tick| (tick, value_axis.label(tick)))
            .collect();
        let y_label_width = y_labels
            .iter()
            .map(|(_, label)| text::measure(label, TEXT_SIZE))
            .max()
            .unwrap_or(0)
            + 2 * MARGIN;
        let mut plot = ChartBuilder::on(&plot_area)
            .margin_left(MARGIN)
            .margin_right(MARGIN * 2)
            .margin_top(6)
            .x_label_area_size(X_LABEL_HEIGHT)
            .y_label_area_size(y_label_width)
            .build_cartesian_2d(time_axis.clone(), value_axis.clone())
            .map_err(draw_error)?;
        let (t0, t1) = (time_axis.start, time_axis.end);
        let (v0, v1) = (value_axis.min, value_axis.max);

        // Grid, then axes, then data, so lines stay on top.
        for &(tick, _) in &y_labels {
            plot.draw_series(std::iter::once(PathElement::new(
                vec![(t0, tick), (t1, tick)],
                GRID,
            )))
            .map_err(draw_error)?;
        }
        for &tick in &time_axis.ticks {
            plot.draw_series(std::iter::once(PathElement::new(
                vec![(tick, v0), (tick, v1)],
                GRID,
            )))
            .map_err(draw_error)?;
        }
        let axes = [vec![(t0, v1), (t0, v0), (t1, v0)]];
        plot.draw_series(
            axes.into_iter()
                .map(|points| PathElement::new(points, AXIS)),
        )
        .map_err(draw_error)?;
        for (index, (series, segments)) in chart.series.iter().zip(&lines).enumerate() {
            let style = rgb(series_color(index, &series.style)).stroke_width(LINE_WIDTH);
            for segment in segments {
                match segment.as_slice() {
                    [] => {}
                    // A lone point has no line; a dot keeps it visible.
                    [point] => {
                        plot.draw_series(std::iter::once(Circle::new(*point, 2, style.filled())))
                            .map_err(draw_error)?;
                    }
                    _ if series.style.dashed => {
                        plot.draw_series(DashedLineSeries::new(
                            segment.iter().copied(),
                            8,
                            5,
                            style,
                        ))
                        .map_err(draw_error)?;
                    }
                    _ => {
                        plot.draw_series(LineSeries::new(segment.iter().copied(), style))
                            .map_err(draw_error)?;
                    }
                }
            }
        }

        // Tick labels and the caption, placed by the plot's own mapping.
        let area = Canvas::new(&plot_area, self.mode);
        for (tick, label) in &y_labels {
            let (x, y) = area.relative(plot.backend_coord(&(t0, *tick)));
            area.text(
                label.clone(),
                (x - 6, y),
                TEXT_SIZE,
                MUTED,
                (HPos::Right, VPos::Center),
            )?;
        }
        let (_, bottom) = area.relative(plot.backend_coord(&(t0, v0)));
        for &tick in &time_axis.ticks {
            let (x, _) = area.relative(plot.backend_coord(&(tick, v0)));
            area.text(
                time_axis.label(tick),
                (x, bottom + 5),
                TEXT_SIZE,
                MUTED,
                (HPos::Center, VPos::Top),
            )?;
        }
        let (left, _) = area.relative(plot.backend_coord(&(t0, v0)));
        let (right, _) = area.relative(plot.backend_coord(&(t1, v0)));
        let caption = time_axis.caption();
        if text::measure(&caption, TEXT_SIZE) <= (right - left).unsigned_abs() {
            let position = ((left + right) / 2, bottom + 22);
            area.text(
                caption,
                position,
                TEXT_SIZE,
                MUTED,
                (HPos::Center, VPos::Top),
            )?;
        }
        Canvas::new(&legend_area, self.mode).draw_legend(&legend, chart)
    }

    fn draw_legend(&self, legend: &Legend, chart: &Chart) -> Result<()> {
        let columns = legend.columns.max(1);
        for (position, entry) in legend.entries.iter().enumerate() {
            let x = (MARGIN + (position % columns) as u32 * legend.column_width) as i32;
            let y = ((position / columns) as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
            let Some(index) = entry.series else {
                self.text(
                    entry.text.clone(),
                    (x, y),
                    TEXT_SIZE,
                    MUTED,
                    (HPos::Left, VPos::Center),
                )?;
                continue;
            };
            let Some(series) = chart.series.get(index) else {
                continue;
            };
            let style = rgb(series_color(index, &series.style)).stroke_width(3);
            let swatch = SWATCH as i32;
            let pieces = if series.style.dashed {
                vec![(0, 8), (13, swatch)]
            } else {
                vec![(0, swatch)]
            };
            for (from, to) in pieces {
                self.line(vec![(x + from, y), (x + to, y)], style)?;
            }
            let text_x = x + swatch + GAP as i32;
            self.text(
                entry.text.clone(),
                (text_x, y),
                TEXT_SIZE,
                TEXT,
                (HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    }

    /// A framed "No data" with explanation lines under it.
    fn draw_no_data(&self, lines: &[&str]) -> Result<()> {
        let (width, height) = self.size();
        let (w, h) = (width as i32, height as i32);
        let inset = MARGIN as i32;
        let frame = vec![
            (inset, inset / 2),
            (w - inset, inset / 2),
            (w - inset, h - inset),
            (inset, h - inset),
            (inset, inset / 2),
        ];
        self.line(frame, ShapeStyle::from(GRID).stroke_width(1))?;
        let center = (w / 2, h / 2 - 12);
        self.text(
            "No data",
            center,
            NO_DATA_SIZE,
            MUTED,
            (HPos::Center, VPos::Center),
        )?;
        for (row, line) in lines.iter().enumerate() {
            let y = center.1 + 26 + row as i32 * 18;
            let fitted = legend::truncate(line, width.saturating_sub(4 * MARGIN), |t| {
                text::measure(t, TEXT_SIZE)
            });
            self.text(
                fitted,
                (center.0, y),
                TEXT_SIZE,
                MUTED,
                (HPos::Center, VPos::Center),
            )?;
        }
        Ok(())
    }
}

/// The drawable runs of a series: points inside `[start, end]` split at NaN,
/// ±Inf and, with a step, at holes longer than one and a half steps (not step
/// series: their values hold until the next point by definition, and get a
/// corner point to draw that; the last one holds to the end of the range).
fn segments(
    series: &Series,
    (start, end): (i64, i64),
    step_ms: Option<i64>,
) -> Vec<Vec<(i64, f64)>> {
    let mut runs = Vec::new();
    let mut run: Vec<(i64, f64)> = Vec::new();
    for &(t, v) in &series.points {
        if t < start || t > end {
            continue;
        }
        let hole = match (step_ms, run.last()) {
            (Some(step), Some(&(last, _))) if step > 0 && !series.style.steps => {
                t.saturating_sub(last) > step.saturating_add(step / 2)
            }
            _ => false,
        };
        if !v.is_finite() || hole {
            if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
            if !v.is_finite() {
                continue;
            }
        }
        if let (true, Some(&(_, previous))) = (series.style.steps, run.last()) {
            run.push((t, previous));
        }
        run.push((t, v));
    }
    if let (true, Some(&(last, value))) = (series.style.steps, run.last())
        && last < end
    {
        run.push((end, value)); // the last value holds to the end
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// The smallest and largest finite value drawn, if any.
fn extremes(lines: &[Vec<Vec<(i64, f64)>>]) -> Option<(f64, f64)> {
    lines
        .iter()
        .flatten()
        .flatten()
        .fold(None, |acc, &(_, v)| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((v.min(lo), v.max(hi))),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Series {
        Series::new("s", points.to_vec())
    }

    #[test]
    fn segments_break_at_nan_inf_and_stale_markers() {
        let s = series(&[
            (0, 1.0),
            (1, 2.0),
            (2, f64::NAN),
            (3, 3.0),
            (4, tsdb::model::STALE_NAN),
            (5, f64::INFINITY),
            (6, 4.0),
            (7, 5.0),
        ]);
        assert_eq!(
            segments(&s, (0, 10), None),
            [
                vec![(0, 1.0), (1, 2.0)],
                vec![(3, 3.0)],
                vec![(6, 4.0), (7, 5.0)]
            ]
        );
    }

    #[test]
    fn segments_break_at_missing_steps_and_drop_points_outside_the_range() {
        let s = series(&[
            (0, 1.0),
            (10, 1.0),
            (20, 1.0),
            (40, 1.0),
            (50, 1.0),
            (60, 9.0),
        ]);
        assert_eq!(
            segments(&s, (0, 55), Some(10)),
            [
                vec![(0, 1.0), (10, 1.0), (20, 1.0)],
                vec![(40, 1.0), (50, 1.0)]
            ]
        );
        // Scrape jitter within half a step keeps the line joined.
        let jitter = series(&[(0, 1.0), (14, 1.0), (20, 1.0)]);
        assert_eq!(segments(&jitter, (0, 55), Some(10)).len(), 1);
    }

    #[test]
    fn step_series_hold_each_value() {
        let s = series(&[(0, 1.0), (10, 3.0), (20, 2.0)]).steps();
        assert_eq!(
            segments(&s, (0, 20), None),
            [vec![(0, 1.0), (10, 1.0), (10, 3.0), (20, 3.0), (20, 2.0)]]
        );
        assert_eq!(
            segments(&s, (0, 30), Some(5)),
            [vec![
                (0, 1.0),
                (10, 1.0),
                (10, 3.0),
                (20, 3.0),
                (20, 2.0),
                (30, 2.0)
            ]],
            "no holes in step series; the last value holds to the end"
        );
    }

    #[test]
    fn extremes_ignore_empty_series() {
        assert_eq!(
            extremes(&[vec![], vec![vec![(0, 3.0), (1, -2.0)]]]),
            Some((-2.0, 3.0))
        );
        assert_eq!(extremes(&[vec![]]), None);
    }
}
