//! Chart text in the embedded font, DejaVu Sans (`assets/DejaVuSans.ttf`,
//! license in `assets/DejaVuSans-LICENSE.txt`).
//!
//! Bitmaps get their glyphs rasterized here with `ab_glyph`, placed by
//! advance, kerning and side bearing (plotters' own `ab_glyph` text path
//! ignores side bearings, which spaces digits unevenly). SVG gets `<text>`
//! elements sized so DejaVu Sans renders them exactly as measured here.
//! The font is also registered with plotters, so no plotters code path can
//! reach its font-less fallback, which panics.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};
use plotters_backend::{BackendColor, BackendCoord, DrawingErrorKind};

use crate::error::{Error, Result};

/// The family SVG text asks for: DejaVu Sans where installed, any sans-serif
/// font otherwise. Also the name the font is registered under in plotters.
const FAMILY: &str = "DejaVu Sans, sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The parsed font, registered with plotters on first use.
fn font() -> Result<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let font = FontRef::try_from_slice(DEJAVU_SANS).ok()?;
        register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).ok()?;
        Some(font)
    })
    .as_ref()
    .ok_or(Error::Font)
}

/// Loads the font; call once before drawing so later calls cannot fail.
pub(crate) fn ensure_loaded() -> Result<()> {
    font().map(|_| ())
}

/// Glyph positions of `text` at pixel height `size`: x of each glyph's
/// origin, and the advance width of the whole run.
fn layout(font: &FontRef<'static>, text: &str, size: f32) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let scaled = font.as_scaled(PxScale::from(size));
    let mut caret = 0.0;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            caret += scaled.kern(previous, id);
        }
        glyphs.push((id, caret));
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    (glyphs, caret)
}

/// Width of `text` in pixels at pixel height `size`.
pub(crate) fn measure(text: &str, size: f64) -> u32 {
    match font() {
        Ok(font) => layout(font, text, size as f32).1.ceil() as u32,
        Err(_) => 0,
    }
}

/// How text is put on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextMode {
    /// Rasterize glyphs into the bitmap.
    Raster,
    /// Let the backend write text (SVG `<text>`).
    Native,
}

/// A line of text anchored at a point (`anchor` says which point of the
/// text's box sits there).
pub(crate) struct Label {
    pub text: String,
    pub position: BackendCoord,
    /// Pixel height: ascent to descent.
    pub size: f64,
    pub color: RGBColor,
    pub anchor: (HPos, VPos),
    pub mode: TextMode,
}

impl<'a> PointCollection<'a, BackendCoord> for &'a Label {
    type Point = &'a BackendCoord;
    type IntoIter = std::iter::Once<&'a BackendCoord>;

    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.position)
    }
}

impl<DB: DrawingBackend> Drawable<DB> for Label {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let (Some(position), Ok(font)) = (points.next(), font()) else {
            return Ok(());
        };
        match self.mode {
            TextMode::Native => {
                // plotters writes font-size = size / 1.24; make that the em
                // size matching our pixel height.
                let em = self.size * f64::from(font.units_per_em().unwrap_or(2048.0))
                    / f64::from(font.height_unscaled());
                let style = TextStyle::from((FAMILY, em * 1.24).into_font())
                    .color(&self.color)
                    .pos(Pos::new(self.anchor.0, self.anchor.1));
                backend.draw_text(&self.text, &style, position)
            }
            TextMode::Raster => self.rasterize(font, position, backend),
        }
    }
}

impl Label {
    fn rasterize<DB: DrawingBackend>(
        &self,
        font: &FontRef<'static>,
        (x, y): BackendCoord,
        backend: &mut DB,
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let size = self.size as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        let (glyphs, width) = layout(font, &self.text, size);
        let left = x as f32
            - match self.anchor.0 {
                HPos::Left => 0.0,
                HPos::Center => width / 2.0,
                HPos::Right => width,
            };
        let (ascent, descent) = (scaled.ascent(), scaled.descent());
        let baseline = y as f32
            + match self.anchor.1 {
                VPos::Top => ascent,
                VPos::Center => (ascent + descent) / 2.0,
                VPos::Bottom => descent,
            };
        let rgb = (self.color.0, self.color.1, self.color.2);
        let mut result = Ok(());
        for (id, offset) in glyphs {
            let glyph = id.with_scale_and_position(size, point(left + offset, baseline));
            let Some(outline) = scaled.outline_glyph(glyph) else {
                continue; // spaces have no outline
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                if coverage <= 0.0 || result.is_err() {
                    return;
                }
                let pixel = (
                    bounds.min.x as i32 + gx as i32,
                    bounds.min.y as i32 + gy as i32,
                );
                let color = BackendColor {
                    alpha: f64::from(coverage.min(1.0)),
                    rgb,
                };
                result = backend.draw_pixel(pixel, color);
            });
            if result.is_err() {
                break;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_loads_and_measures() {
        ensure_loaded().unwrap();
        let one = measure("1", 12.0);
        assert!(one > 3 && one < 12, "{one}");
        // DejaVu digits share one advance width: tick labels line up.
        assert_eq!(measure("10:00", 12.0), measure("88:88", 12.0));
        assert_eq!(measure("", 12.0), 0);
        assert!(measure("a longer label", 12.0) > measure("short", 12.0));
    }

    #[test]
    fn raster_text_lands_where_anchored() {
        let (width, height) = (120u32, 40u32);
        let mut rgb = vec![255u8; (width * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
            root.draw(&Label {
                text: "10:00".into(),
                position: (60, 20),
                size: 14.0,
                color: BLACK,
                anchor: (HPos::Center, VPos::Center),
                mode: TextMode::Raster,
            })
            .unwrap();
            root.present().unwrap();
        }
        let dark: Vec<(u32, u32)> = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .filter(|&(x, y)| rgb[((y * width + x) * 3) as usize] < 128)
            .collect();
        assert!(!dark.is_empty());
        let (min_x, max_x) = (
            dark.iter().map(|p| p.0).min().unwrap(),
            dark.iter().map(|p| p.0).max().unwrap(),
        );
        let (min_y, max_y) = (
            dark.iter().map(|p| p.1).min().unwrap(),
            dark.iter().map(|p| p.1).max().unwrap(),
        );
        let text_width = measure("10:00", 14.0);
        assert!(
            min_x + 2 >= 60 - text_width / 2 && max_x <= 60 + text_width / 2 + 2,
            "{min_x}..{max_x}"
        );
        assert!(
            (60i32 - ((min_x + max_x) / 2) as i32).abs() <= 2,
            "{min_x}..{max_x}"
        );
        assert!(min_y >= 12 && max_y <= 28, "{min_y}..{max_y}");
    }
}
