//! Helpers for the trackers' unit tests.

use crate::engine::{BBox, Detection};

pub fn det(label: &str, class_id: usize, b: [f32; 4], confidence: f32) -> Detection {
    Detection {
        label: label.into(),
        class_id,
        confidence,
        bbox: BBox {
            l: b[0],
            t: b[1],
            w: b[2],
            h: b[3],
        },
    }
}

pub fn person(b: [f32; 4], confidence: f32) -> Detection {
    det("person", 0, b, confidence)
}

/// A 40x80 px box walking right at 4 px per frame.
pub fn walk(frame: u32) -> [f32; 4] {
    [100.0 + 4.0 * frame as f32, 100.0, 40.0, 80.0]
}
