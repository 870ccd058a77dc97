//! Which frame is a track's best picture.
//!
//! The rule, in one formula: `quality = score * sqrt(area) * edge`, where
//! - `score` is the detection confidence (0..1);
//! - `area` is the box's share of the frame (0..1); its square root, so that size matters but a
//!   box twice as large does not beat a much more confident one;
//! - `edge` is 1, or [`SNAPSHOT_EDGE_PENALTY`] when the box comes within
//!   [`SNAPSHOT_EDGE_MARGIN_PX`] pixels of the frame border: the object is probably cut off.
//!
//! A new frame replaces the stored best only when its quality is at least
//! `(1 + SNAPSHOT_MIN_GAIN)` times the old one, so a slowly growing box does not rewrite the
//! JPEG (and queue an upload) on every frame.

use std::collections::HashMap;

use crate::defaults::{
    SNAPSHOT_EDGE_MARGIN_PX, SNAPSHOT_EDGE_PENALTY, SNAPSHOT_MAX_TRACKS, SNAPSHOT_MIN_GAIN,
};
use crate::engine::BBox;

/// Whether the box comes within the edge margin of the frame border (or crosses it).
pub fn touches_edge(bbox: BBox, frame_w: u32, frame_h: u32) -> bool {
    let (fw, fh) = (frame_w as f32, frame_h as f32);
    let left = bbox.l * fw;
    let top = bbox.t * fh;
    let right = (bbox.l + bbox.w) * fw;
    let bottom = (bbox.t + bbox.h) * fh;
    let m = SNAPSHOT_EDGE_MARGIN_PX;
    left <= m || top <= m || right >= fw - m || bottom >= fh - m
}

/// The quality of one detection as a snapshot (see the module docs); 0 for nonsense input.
pub fn quality(score: f32, bbox: BBox, frame_w: u32, frame_h: u32) -> f32 {
    let sane = [score, bbox.l, bbox.t, bbox.w, bbox.h]
        .iter()
        .all(|v| v.is_finite());
    if !sane || frame_w == 0 || frame_h == 0 || bbox.w <= 0.0 || bbox.h <= 0.0 {
        return 0.0;
    }
    // Only the part inside the frame counts.
    let w = (bbox.l + bbox.w).min(1.0) - bbox.l.max(0.0);
    let h = (bbox.t + bbox.h).min(1.0) - bbox.t.max(0.0);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let edge = if touches_edge(bbox, frame_w, frame_h) {
        SNAPSHOT_EDGE_PENALTY
    } else {
        1.0
    };
    score.clamp(0.0, 1.0) * (w * h).sqrt() * edge
}

/// The best quality seen so far per track; bounded by [`SNAPSHOT_MAX_TRACKS`].
#[derive(Debug)]
pub struct BestSnapshots {
    best: HashMap<String, f32>,
    min_gain: f32,
    max_tracks: usize,
}

impl Default for BestSnapshots {
    fn default() -> Self {
        Self::new()
    }
}

impl BestSnapshots {
    pub fn new() -> Self {
        Self::with_limits(SNAPSHOT_MIN_GAIN, SNAPSHOT_MAX_TRACKS)
    }

    pub fn with_limits(min_gain: f32, max_tracks: usize) -> Self {
        Self {
            best: HashMap::new(),
            min_gain: min_gain.max(0.0),
            max_tracks,
        }
    }

    /// Offers this frame's detection of `track_id`. True means it is the track's new best:
    /// the caller should now write the snapshot (and may queue its upload).
    pub fn offer(
        &mut self,
        track_id: &str,
        score: f32,
        bbox: BBox,
        frame_w: u32,
        frame_h: u32,
    ) -> bool {
        let q = quality(score, bbox, frame_w, frame_h);
        if q <= 0.0 {
            return false;
        }
        let full = self.best.len() >= self.max_tracks;
        match self.best.get_mut(track_id) {
            Some(old) => {
                if q >= *old * (1.0 + self.min_gain) {
                    *old = q;
                    true
                } else {
                    false
                }
            }
            None if full => false,
            None => {
                self.best.insert(track_id.to_string(), q);
                true
            }
        }
    }

    /// The track ended: drop what we remember of it.
    pub fn forget(&mut self, track_id: &str) {
        self.best.remove(track_id);
    }

    /// Forget every track (source change, model swap).
    pub fn clear(&mut self) {
        self.best.clear();
    }

    /// The best quality stored for a track.
    pub fn best_quality(&self, track_id: &str) -> Option<f32> {
        self.best.get(track_id).copied()
    }

    pub fn len(&self) -> usize {
        self.best.len()
    }

    pub fn is_empty(&self) -> bool {
        self.best.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bb(l: f32, t: f32, w: f32, h: f32) -> BBox {
        BBox { l, t, w, h }
    }

    #[test]
    fn first_offer_is_best_and_worse_ones_are_not() {
        let mut b = BestSnapshots::new();
        assert!(b.offer("t1", 0.8, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        assert!(!b.offer("t1", 0.7, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        assert!(!b.offer("t1", 0.8, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        assert!(b.offer("t1", 0.95, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
    }

    #[test]
    fn edge_touching_box_loses_to_slightly_lower_full_box() {
        let mut b = BestSnapshots::new();
        // Same size, higher score, but its left side is on the frame border.
        assert!(b.offer("t", 0.95, bb(0.0, 0.3, 0.2, 0.4), 640, 480));
        assert!(b.offer("t", 0.85, bb(0.4, 0.3, 0.2, 0.4), 640, 480));
        // And the other way round: once a full box is stored, an edge box does not replace it.
        let mut c = BestSnapshots::new();
        assert!(c.offer("t", 0.85, bb(0.4, 0.3, 0.2, 0.4), 640, 480));
        assert!(!c.offer("t", 0.95, bb(0.8, 0.3, 0.2, 0.4), 640, 480));
    }

    #[test]
    fn larger_box_wins_at_equal_score_but_not_against_much_higher_score() {
        let mut b = BestSnapshots::new();
        assert!(b.offer("t", 0.8, bb(0.4, 0.4, 0.1, 0.2), 640, 480));
        assert!(b.offer("t", 0.8, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        let q_big_unsure = quality(0.3, bb(0.3, 0.2, 0.3, 0.6), 640, 480);
        let q_small_sure = quality(0.9, bb(0.4, 0.4, 0.15, 0.3), 640, 480);
        assert!(q_small_sure > q_big_unsure);
    }

    #[test]
    fn tiny_gain_does_not_rewrite() {
        let mut b = BestSnapshots::new();
        assert!(b.offer("t", 0.80, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        assert!(!b.offer("t", 0.81, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
        assert!(b.offer("t", 0.85, bb(0.3, 0.3, 0.2, 0.4), 640, 480));
    }

    #[test]
    fn edge_margin_is_in_pixels() {
        // 1 px from the left edge of a 1000 px frame: touching; 10 px: not.
        assert!(touches_edge(bb(0.001, 0.3, 0.2, 0.2), 1000, 1000));
        assert!(!touches_edge(bb(0.01, 0.3, 0.2, 0.2), 1000, 1000));
        assert!(touches_edge(bb(0.5, 0.5, 0.5, 0.2), 1000, 1000));
        assert!(touches_edge(bb(0.5, 0.5, 0.2, 0.6), 1000, 1000));
    }

    #[test]
    fn nonsense_is_never_best() {
        let mut b = BestSnapshots::new();
        assert!(!b.offer("t", f32::NAN, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        assert!(!b.offer("t", 0.9, bb(0.3, f32::INFINITY, 0.2, 0.2), 640, 480));
        assert!(!b.offer("t", 0.9, bb(0.3, 0.3, 0.0, 0.2), 640, 480));
        assert!(!b.offer("t", 0.9, bb(1.5, 0.3, 0.2, 0.2), 640, 480));
        assert!(!b.offer("t", 0.9, bb(0.3, 0.3, 0.2, 0.2), 0, 480));
        assert!(b.is_empty());
    }

    #[test]
    fn forget_and_track_bound() {
        let mut b = BestSnapshots::with_limits(0.05, 2);
        assert!(b.offer("a", 0.9, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        assert!(b.offer("b", 0.9, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        assert!(!b.offer("c", 0.9, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        b.forget("a");
        assert!(b.offer("c", 0.9, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        // A forgotten track starts over: its next offer is a best again.
        b.forget("b");
        assert!(b.offer("b", 0.5, bb(0.3, 0.3, 0.2, 0.2), 640, 480));
        assert_eq!(b.len(), 2);
    }
}
