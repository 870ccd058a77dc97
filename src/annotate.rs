//! Draws labelled boxes on a frame, for `detect --annotate` and snapshots.

use std::sync::LazyLock;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use crate::engine::Detection;

/// The one embedded font (DejaVu Sans), for box labels here and the bench chart.
pub static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Parsed once; `None` only if the embedded file were corrupt (labels are then skipped).
static FONT: LazyLock<Option<FontRef<'static>>> =
    LazyLock::new(|| FontRef::try_from_slice(FONT_BYTES).ok());

const PALETTE: [[u8; 3]; 6] = [
    [255, 56, 56],
    [56, 255, 56],
    [56, 140, 255],
    [255, 200, 0],
    [255, 0, 255],
    [0, 230, 230],
];

pub fn draw(img: &mut RgbImage, detections: &[Detection]) {
    let font = FONT.as_ref();
    let (w, h) = (img.width() as f32, img.height() as f32);
    let scale = PxScale::from((h / 40.0).clamp(12.0, 28.0));
    for d in detections {
        let color = Rgb(PALETTE[d.class_id % PALETTE.len()]);
        let x = (d.bbox.l * w).round() as i32;
        let y = (d.bbox.t * h).round() as i32;
        let bw = ((d.bbox.w * w).round() as u32).max(1);
        let bh = ((d.bbox.h * h).round() as u32).max(1);
        for grow in 0..2 {
            let r =
                Rect::at(x - grow, y - grow).of_size(bw + 2 * grow as u32, bh + 2 * grow as u32);
            draw_hollow_rect_mut(img, r, color);
        }
        if let Some(font) = font {
            let text = format!("{} {:.2}", d.label, d.confidence);
            let (tw, th) = text_size(scale, font, &text);
            let ty = (y - th as i32 - 4).max(0);
            draw_filled_rect_mut(img, Rect::at(x, ty).of_size(tw + 4, th + 4), color);
            draw_text_mut(img, Rgb([0, 0, 0]), x + 2, ty + 2, scale, font, &text);
        }
    }
}
