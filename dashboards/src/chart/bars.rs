//! Horizontal grouped bar charts (benchmark ratios: one row per measured
//! figure, one bar per compared system), PNG only.
//!
//! Rows run top to bottom in the given order with their names left of the
//! plot, so long names need no rotation; each bar is labelled with its value.
//! Reference lines (say a goal of 0.5 and parity at 1) are drawn dashed
//! across the plot. Non-finite values draw no bar and are labelled "n/a".

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::draw::{AXIS, GRID, encode_png};
use super::text::{self, Label, TextMode};
use super::value_axis::ValueAxis;
use super::{Rgb, Size, Unit};
use crate::error::{Error, Result};

/// A grouped horizontal bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    /// Row names, top to bottom.
    pub rows: Vec<String>,
    /// One bar per row and group; `values` has one entry per row.
    pub groups: Vec<BarGroup>,
    /// Dashed vertical lines at these values, with their captions.
    pub references: Vec<(f64, String)>,
}

/// One compared thing: a legend entry and its value per row.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub label: String,
    pub color: Rgb,
    pub values: Vec<f64>,
}

const TITLE_SIZE: f64 = 17.0;
const TEXT_SIZE: f64 = 13.0;
const TITLE_HEIGHT: i32 = 32;
const LEGEND_HEIGHT: i32 = 24;
const AXIS_HEIGHT: i32 = 24;
const MARGIN: i32 = 10;
const TEXT: RGBColor = RGBColor(0x20, 0x20, 0x20);
const MUTED: RGBColor = RGBColor(0x6A, 0x6A, 0x6A);

/// Renders `chart` as PNG.
///
/// # Errors
/// [`Error::InvalidSize`] as [`super::render`]; [`Error::Draw`] when a
/// group's values do not match the rows.
pub fn render_bars(chart: &BarChart, size: Size) -> Result<Vec<u8>> {
    size.validate()?;
    if let Some(group) = chart
        .groups
        .iter()
        .find(|g| g.values.len() != chart.rows.len())
    {
        return Err(Error::Draw(format!(
            "bar group {:?} has {} values for {} rows",
            group.label,
            group.values.len(),
            chart.rows.len()
        )));
    }
    text::ensure_loaded()?;
    let mut rgb = vec![0u8; size.width as usize * size.height as usize * 3];
    {
        let root =
            BitMapBackend::with_buffer(&mut rgb, (size.width, size.height)).into_drawing_area();
        draw(&root, chart, size).map_err(|e| Error::Draw(e.to_string()))?;
        root.present().map_err(|e| Error::Draw(e.to_string()))?;
    }
    encode_png(&rgb, size)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<
    (),
    DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>,
>;

fn label(
    area: &Area<'_>,
    text: &str,
    at: (i32, i32),
    size: f64,
    color: RGBColor,
    anchor: (HPos, VPos),
) -> DrawResult {
    area.draw(&Label {
        text: text.to_string(),
        position: at,
        size,
        color,
        anchor,
        mode: TextMode::Raster,
    })
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn draw(area: &Area<'_>, chart: &BarChart, size: Size) -> DrawResult {
    area.fill(&WHITE)?;
    let (width, height) = (size.width as i32, size.height as i32);
    label(
        area,
        &chart.title,
        (width / 2, TITLE_HEIGHT / 2),
        TITLE_SIZE,
        TEXT,
        (HPos::Center, VPos::Center),
    )?;

    // Legend on one line under the title.
    let mut x = MARGIN * 2;
    let legend_y = TITLE_HEIGHT + LEGEND_HEIGHT / 2;
    for group in &chart.groups {
        area.draw(&Rectangle::new(
            [(x, legend_y - 5), (x + 14, legend_y + 5)],
            color(group.color).filled(),
        ))?;
        label(
            area,
            &group.label,
            (x + 20, legend_y),
            TEXT_SIZE,
            TEXT,
            (HPos::Left, VPos::Center),
        )?;
        x += 20 + text::measure(&group.label, TEXT_SIZE) as i32 + 24;
    }

    let finite = chart
        .groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .chain(chart.references.iter().map(|r| r.0))
        .filter(|v| v.is_finite());
    let max = finite.fold(0.0f64, f64::max);
    let axis = ValueAxis::fit(Unit::Plain, (0.0, max * 1.12), Some(0.0), None, 8);

    let name_width = chart
        .rows
        .iter()
        .map(|r| text::measure(r, TEXT_SIZE) as i32)
        .max()
        .unwrap_or(0);
    let left = MARGIN * 2 + name_width;
    let right = width - MARGIN * 3;
    let top = TITLE_HEIGHT + LEGEND_HEIGHT + MARGIN;
    let bottom = height - AXIS_HEIGHT - MARGIN;
    if right <= left || bottom <= top {
        return Ok(());
    }
    let span = (axis.max - axis.min).max(f64::MIN_POSITIVE);
    let x_of = |v: f64| left + (((v - axis.min) / span) * f64::from(right - left)).round() as i32;

    for &tick in &axis.ticks {
        let tx = x_of(tick);
        area.draw(&PathElement::new(vec![(tx, top), (tx, bottom)], GRID))?;
        label(
            area,
            &axis.label(tick),
            (tx, bottom + 5),
            TEXT_SIZE,
            MUTED,
            (HPos::Center, VPos::Top),
        )?;
    }
    area.draw(&PathElement::new(
        vec![(left, top), (left, bottom), (right, bottom)],
        AXIS,
    ))?;

    let rows = chart.rows.len().max(1) as i32;
    let row_height = (bottom - top) / rows;
    let groups = chart.groups.len().max(1) as i32;
    let bar_height = ((row_height - 8) / groups).max(1);
    for (row, name) in chart.rows.iter().enumerate() {
        let row_top = top + row as i32 * row_height;
        label(
            area,
            name,
            (left - 8, row_top + row_height / 2),
            TEXT_SIZE,
            TEXT,
            (HPos::Right, VPos::Center),
        )?;
        for (index, group) in chart.groups.iter().enumerate() {
            let y0 = row_top + 4 + index as i32 * bar_height;
            let y1 = y0 + bar_height - 1;
            let value = group.values.get(row).copied().unwrap_or(f64::NAN);
            let text = if value.is_finite() {
                area.draw(&Rectangle::new(
                    [(left, y0), (x_of(value).max(left + 1), y1)],
                    color(group.color).filled(),
                ))?;
                format!("{value:.2}")
            } else {
                "n/a".to_string()
            };
            let end = if value.is_finite() { x_of(value) } else { left };
            label(
                area,
                &text,
                (end + 4, (y0 + y1) / 2),
                TEXT_SIZE * 0.9,
                MUTED,
                (HPos::Left, VPos::Center),
            )?;
        }
    }

    for (value, caption) in &chart.references {
        if !value.is_finite() {
            continue;
        }
        let rx = x_of(*value);
        let mut y = top;
        while y < bottom {
            area.draw(&PathElement::new(
                vec![(rx, y), (rx, (y + 6).min(bottom))],
                AXIS.stroke_width(2),
            ))?;
            y += 10;
        }
        label(
            area,
            caption,
            (rx, top - 2),
            TEXT_SIZE * 0.9,
            MUTED,
            (HPos::Center, VPos::Bottom),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        BarChart {
            title: "Sextant / peer".to_string(),
            rows: vec![
                "CPU per sample".to_string(),
                "memory per series".to_string(),
            ],
            groups: vec![
                BarGroup {
                    label: "vs Prometheus".to_string(),
                    color: Rgb(0x1F, 0x77, 0xB4),
                    values: vec![0.4, f64::NAN],
                },
                BarGroup {
                    label: "vs VictoriaMetrics".to_string(),
                    color: Rgb(0xFF, 0x7F, 0x0E),
                    values: vec![1.3, 0.8],
                },
            ],
            references: vec![(1.0, "1x".to_string()), (0.5, "0.5x".to_string())],
        }
    }

    fn pixels(png: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn renders_deterministic_png_with_bars_in_group_colors() {
        let size = Size::new(640, 320);
        let a = render_bars(&chart(), size).unwrap();
        assert_eq!(a, render_bars(&chart(), size).unwrap());
        let (info, rgb) = pixels(&a);
        assert_eq!((info.width, info.height), (640, 320));
        let count = |c: Rgb| {
            rgb.chunks_exact(3)
                .filter(|p| p == &[c.0, c.1, c.2])
                .count()
        };
        let blue = count(Rgb(0x1F, 0x77, 0xB4));
        let orange = count(Rgb(0xFF, 0x7F, 0x0E));
        // The orange group has two bars, one of them the longest.
        assert!(orange > blue * 2, "orange {orange} blue {blue}");
        assert!(blue > 100);
    }

    #[test]
    fn mismatched_rows_are_an_error() {
        let mut bad = chart();
        bad.groups[0].values.pop();
        assert!(matches!(
            render_bars(&bad, Size::default()),
            Err(Error::Draw(_))
        ));
    }
}
