//! Class-aware greedy non-maximum suppression, shared by every decoder.

use super::decoders::RawDetection;

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Keeps the best box of each overlapping same-class group, highest score first.
pub fn nms(
    mut dets: Vec<RawDetection>,
    iou_threshold: f32,
    max_detections: usize,
) -> Vec<RawDetection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<RawDetection> = Vec::new();
    for d in dets {
        if kept.len() >= max_detections {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.class == d.class && iou(&k.bbox, &d.bbox) > iou_threshold);
        if !suppressed {
            kept.push(d);
        }
    }
    kept
}
