//! The live picture: boxes with label, score and track id (the same drawing as
//! `detect --annotate`), zones and lines with their names, a caption; then JPEG. Pure.

use std::sync::LazyLock;

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_line_segment_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use crate::engine::Detection;
use crate::scene::SceneConfig;

static FONT: LazyLock<Option<FontRef<'static>>> =
    LazyLock::new(|| FontRef::try_from_slice(crate::annotate::FONT_BYTES).ok());

/// Zones in amber, lines in cyan: apart from the box palette's primaries.
pub const ZONE_COLOR: [u8; 3] = [255, 170, 0];
pub const LINE_COLOR: [u8; 3] = [0, 200, 255];

/// What goes on one picture.
pub struct Overlay<'a> {
    pub detections: &'a [Detection],
    /// Track id per detection (same order), `None` while unconfirmed.
    pub ids: &'a [Option<String>],
    pub scene: &'a SceneConfig,
    /// Bottom-left text (time, frame number): a person sees the picture is live.
    pub caption: &'a str,
}

/// Track ids are `<epoch>-<n>`: the page shows `#n`, as the events list does.
pub fn short_id(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

pub fn draw(img: &mut RgbImage, o: &Overlay) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let px = |p: [f32; 2]| (p[0] * w, p[1] * h);
    let scale = PxScale::from((h / 32.0).clamp(11.0, 20.0));
    for (name, z) in &o.scene.zones {
        let n = z.polygon.len();
        for i in 0..n {
            thick_line(
                img,
                px(z.polygon[i]),
                px(z.polygon[(i + 1) % n]),
                ZONE_COLOR,
            );
        }
        if let Some(first) = z.polygon.first() {
            tag(img, px(*first), name, ZONE_COLOR, scale);
        }
    }
    for (name, l) in &o.scene.lines {
        let (a, b) = (px(l.from), px(l.to));
        thick_line(img, a, b, LINE_COLOR);
        // An arrow from the middle towards the "in" side: the right of from->to on the
        // image (y grows downwards), see scene::geometry::crossing.
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let tip = (mid.0 - dy / len * 18.0, mid.1 + dx / len * 18.0);
        thick_line(img, mid, tip, LINE_COLOR);
        tag(img, a, &format!("{name} (in \u{2192})"), LINE_COLOR, scale);
    }
    let labelled: Vec<Detection> = o
        .detections
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut d = d.clone();
            if let Some(Some(id)) = o.ids.get(i) {
                d.label = format!("#{} {}", short_id(id), d.label);
            }
            d
        })
        .collect();
    crate::annotate::draw(img, &labelled);
    if !o.caption.is_empty() {
        let y = img.height().saturating_sub(scale.y as u32 + 8) as f32;
        tag(img, (4.0, y), o.caption, [20, 20, 20], scale);
    }
}

fn thick_line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), color: [u8; 3]) {
    for (ox, oy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)] {
        draw_line_segment_mut(img, (a.0 + ox, a.1 + oy), (b.0 + ox, b.1 + oy), Rgb(color));
    }
}

/// A filled label; dark backgrounds get white text.
fn tag(img: &mut RgbImage, at: (f32, f32), text: &str, bg: [u8; 3], scale: PxScale) {
    let Some(font) = FONT.as_ref() else { return };
    let (tw, th) = text_size(scale, font, text);
    let x = (at.0 as i32).clamp(0, img.width().saturating_sub(tw + 4) as i32);
    let y = (at.1 as i32 - th as i32 - 4).max(0);
    draw_filled_rect_mut(img, Rect::at(x, y).of_size(tw + 4, th + 4), Rgb(bg));
    let luma = bg[0] as u32 * 3 + bg[1] as u32 * 6 + bg[2] as u32;
    let fg = if luma < 1200 { [255; 3] } else { [0; 3] };
    draw_text_mut(img, Rgb(fg), x + 2, y + 2, scale, font, text);
}

pub fn jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(64 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BBox;
    use crate::scene::{LineConfig, ZoneConfig};

    fn scene() -> SceneConfig {
        let mut s = SceneConfig::default();
        s.zones.insert(
            "door".into(),
            ZoneConfig {
                polygon: vec![[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]],
                classes: vec![],
                min_frames: 1,
                loiter_secs: 0.0,
            },
        );
        s.lines.insert(
            "gate".into(),
            LineConfig {
                from: [0.8, 0.0],
                to: [0.8, 1.0],
                classes: vec![],
            },
        );
        s
    }

    fn count(img: &RgbImage, c: [u8; 3]) -> usize {
        img.pixels().filter(|p| p.0 == c).count()
    }

    #[test]
    fn draws_boxes_zones_lines_and_caption() {
        let mut img = RgbImage::new(200, 100);
        let det = Detection {
            label: "person".into(),
            class_id: 1,
            confidence: 0.9,
            bbox: BBox {
                l: 0.55,
                t: 0.5,
                w: 0.2,
                h: 0.4,
            },
        };
        let ids = vec![Some("1767261600-7".to_string())];
        let s = scene();
        draw(
            &mut img,
            &Overlay {
                detections: &[det],
                ids: &ids,
                scene: &s,
                caption: "12:00:00",
            },
        );
        // The box (annotate's palette, class 1), the zone's edges and the line.
        assert!(count(&img, [56, 255, 56]) > 100);
        assert!(count(&img, ZONE_COLOR) > 100);
        assert!(count(&img, LINE_COLOR) > 100);
        let j = jpeg(&img, 75).unwrap();
        assert_eq!(&j[..2], &[0xFF, 0xD8]);
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("1767261600-7"), "7");
        assert_eq!(short_id("abc"), "abc");
    }
}
