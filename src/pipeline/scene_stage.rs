//! The per-source tracking stage: detections -> tracker -> track ids on detections ->
//! scene events -> best snapshots. One per pipeline (= per source), so a source change is
//! a new tracker; a model swap whose labels differ ends every track and starts over.

use std::collections::HashSet;
use std::sync::Arc;

use image::RgbImage;

use crate::engine::{BBox, Detection};
use crate::ingest::Frame;
use crate::model::ColorOrder;
use crate::scene::{FrameObservations, Observation, Scene, SceneConfig, SceneMessage};
use crate::snapshot::{BestSnapshots, Snapshotter};
use crate::track::{assign, Track, Tracker};

/// Least IoU between a track's filtered box and a detection for the detection to carry the
/// track's id (the tracker matched at >= its own gate; the filtered box sits close to it).
const ID_MATCH_IOU: f32 = 0.3;

/// Snapshot width: frames reach the inference stage at model-input size (e.g. 300x300), so
/// the picture is scaled back to the original aspect at this width. Full resolution would
/// need a GStreamer tee (left for later).
pub const SNAPSHOT_WIDTH: u32 = 640;

/// What one frame gives the rest of the pipeline.
#[derive(Debug, Default)]
pub struct FrameResult {
    /// The track id per detection (same order as the detections given), `None` when no
    /// confirmed track matched it this frame.
    pub ids: Vec<Option<String>>,
    pub messages: Vec<SceneMessage>,
}

pub struct SceneStage {
    tracker: Box<dyn Tracker>,
    scene: Scene,
    /// The config the scene runs; compared by pointer with the live one each frame.
    config: Arc<SceneConfig>,
    snapshots: Option<Snapshotter>,
    /// The same choice the snapshotter makes, on the same inputs, made first: the picture
    /// (a copy and a resize, milliseconds) is built only on frames that improve a track.
    pre: BestSnapshots,
    /// Tracks seen at least once at or above the user's threshold: only these reach the
    /// scene (low-score detections only keep tracks alive, ByteTrack's second stage).
    shown: HashSet<String>,
    /// Tracks that have a snapshot: later, better pictures overwrite the same file (same
    /// reference) silently, so only the first one sends an `update` (message budget).
    snapped: HashSet<String>,
    /// Confirmed, shown tracks alive after the last frame: ended at end of stream.
    alive: Vec<String>,
    last_pts: u64,
}

impl SceneStage {
    pub fn new(
        tracker: Box<dyn Tracker>,
        config: Arc<SceneConfig>,
        snapshots: Option<Snapshotter>,
    ) -> Self {
        SceneStage {
            tracker,
            scene: Scene::new((*config).clone()),
            config,
            snapshots,
            pre: BestSnapshots::new(),
            shown: HashSet::new(),
            snapped: HashSet::new(),
            alive: Vec::new(),
            last_pts: 0,
        }
    }

    /// Applies a new scene config without losing tracks (zones and lines change live).
    /// A new `Arc` holding the same config (a twin patch about something else) changes
    /// nothing, so counts are not reset by unrelated patches.
    pub fn follow_config(&mut self, live: &Arc<SceneConfig>) {
        if !Arc::ptr_eq(live, &self.config) {
            if **live != *self.config {
                self.scene.set_config((**live).clone());
            }
            self.config = live.clone();
        }
    }

    /// One frame: `detections` include low-score ones for the tracker; those at or above
    /// `min_score` are what users see (the frames message and the scene).
    pub fn frame(
        &mut self,
        frame: &Frame,
        pts_ms: u64,
        detections: &[Detection],
        min_score: f32,
        source: &str,
    ) -> FrameResult {
        self.last_pts = pts_ms;
        let update = self.tracker.update(detections);
        let matched: Vec<&Track> = update
            .tracks
            .iter()
            .filter(|t| t.confirmed && t.missed == 0)
            .collect();
        let pairs = match_ids(&matched, detections);
        let mut ids = vec![None; detections.len()];
        for &(t, d) in &pairs {
            if detections[d].confidence >= min_score {
                self.shown.insert(matched[t].id.clone());
            }
            ids[d] = Some(matched[t].id.clone());
        }
        let objects: Vec<Observation> = update
            .tracks
            .iter()
            .filter(|t| t.confirmed && self.shown.contains(&t.id))
            .map(observation)
            .collect();
        let ended: Vec<String> = update
            .ended
            .iter()
            .filter(|t| self.shown.remove(&t.id))
            .map(|t| t.id.clone())
            .collect();
        self.alive = objects.iter().map(|o| o.id.clone()).collect();
        let messages = self.scene.observe(&FrameObservations {
            pts_ms,
            objects: &objects,
            ended: &ended,
        });
        if let Some(snap) = &mut self.snapshots {
            for id in &ended {
                snap.end_track(id);
            }
        }
        for id in &ended {
            self.snapped.remove(id);
            self.pre.forget(id);
        }
        let wanted: Vec<(String, &Detection)> = pairs
            .iter()
            .map(|&(t, d)| (matched[t].id.clone(), &detections[d]))
            .filter(|(id, d)| d.confidence >= min_score && self.shown.contains(id))
            .collect();
        self.offer_snapshots(frame, source, &wanted);
        // Users never see sub-threshold detections, nor the ids of tracks they never saw.
        let ids = ids
            .into_iter()
            .zip(detections)
            .filter(|(_, d)| d.confidence >= min_score)
            .map(|(id, _)| id.filter(|i| self.shown.contains(i)))
            .collect();
        FrameResult { ids, messages }
    }

    /// Ends every live track (end of stream, model swap): their `end` events, then a clean
    /// slate for tracker, scene and snapshots.
    pub fn finish(&mut self) -> Vec<SceneMessage> {
        let ended = std::mem::take(&mut self.alive);
        let out = self.scene.observe(&FrameObservations {
            pts_ms: self.last_pts,
            objects: &[],
            ended: &ended,
        });
        self.tracker.reset();
        self.scene.reset();
        self.shown.clear();
        self.snapped.clear();
        self.pre.clear();
        if let Some(s) = &mut self.snapshots {
            s.reset();
        }
        out
    }

    fn offer_snapshots(&mut self, frame: &Frame, source: &str, wanted: &[(String, &Detection)]) {
        let Some(snap) = &mut self.snapshots else {
            return;
        };
        let (w, h) = picture_size(frame);
        let pre = &mut self.pre;
        let better: Vec<&(String, &Detection)> = wanted
            .iter()
            .filter(|(id, d)| pre.offer(id, d.confidence, d.bbox, w, h))
            .collect();
        if better.is_empty() {
            return;
        }
        let Some(picture) = frame_picture(frame) else {
            tracing::warn!(
                frame = frame.seq,
                "frame buffer does not match its geometry; no snapshot"
            );
            return;
        };
        let now = chrono::Utc::now();
        for (id, det) in better {
            match snap.offer(source, id, now, &picture, det) {
                Ok(Some(r)) => {
                    self.scene.set_snapshot(id, Some(r.reference));
                    if self.snapped.insert(id.clone()) {
                        self.scene.snapshot_improved(id);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, track = %id, "snapshot not written"),
            }
        }
    }
}

/// One-to-one, greedy on IoU, same label: which detection each matched track took.
fn match_ids(tracks: &[&Track], detections: &[Detection]) -> Vec<(usize, usize)> {
    let tb: Vec<assign::Ltwh> = tracks.iter().map(|t| ltwh(&t.bbox)).collect();
    let db: Vec<assign::Ltwh> = detections.iter().map(|d| ltwh(&d.bbox)).collect();
    assign::greedy(
        &tb,
        &db,
        |t, d| tracks[t].label == detections[d].label,
        ID_MATCH_IOU,
    )
    .pairs
}

fn ltwh(b: &BBox) -> assign::Ltwh {
    [b.l, b.t, b.w, b.h]
}

/// A track as the scene sees it: a coasting track's prediction may leave the frame, the
/// scene wants 0..1.
fn observation(t: &Track) -> Observation {
    let c = |v: f32| {
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let (l, r) = (c(t.bbox.l), c(t.bbox.l + t.bbox.w));
    let (top, b) = (c(t.bbox.t), c(t.bbox.t + t.bbox.h));
    Observation {
        id: t.id.clone(),
        label: t.label.clone(),
        bbox: BBox {
            l,
            t: top,
            w: r - l,
            h: b - top,
        },
        score: t.score,
    }
}

/// The snapshot size: the original aspect at [`SNAPSHOT_WIDTH`] (or less, never upscaled).
fn picture_size(frame: &Frame) -> (u32, u32) {
    let aspect = frame.height.max(1) as f32 / frame.width.max(1) as f32;
    let w = SNAPSHOT_WIDTH.min(frame.width.max(1));
    (w, ((w as f32 * aspect).round() as u32).max(1))
}

/// The frame's picture (without letterbox borders) at the original aspect, RGB.
pub fn frame_picture(frame: &Frame) -> Option<RgbImage> {
    let g = frame.geometry;
    let mut img = RgbImage::from_raw(g.input_w as u32, g.input_h as u32, frame.pixels.clone())?;
    if frame.order == ColorOrder::Bgr {
        img.pixels_mut().for_each(|p| p.0.swap(0, 2));
    }
    let (x, y) = (g.content_x.max(0.0) as u32, g.content_y.max(0.0) as u32);
    let (cw, ch) = (g.content_w.max(1.0) as u32, g.content_h.max(1.0) as u32);
    let content = image::imageops::crop_imm(&img, x, y, cw, ch).to_image();
    let (w, h) = picture_size(frame);
    Some(image::imageops::resize(
        &content,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::TrackerConfig;

    fn det(l: f32, score: f32) -> Detection {
        Detection {
            label: "person".into(),
            class_id: 1,
            confidence: score,
            bbox: BBox {
                l,
                t: 0.4,
                w: 0.1,
                h: 0.3,
            },
        }
    }

    fn stage() -> SceneStage {
        let tracker = crate::track::by_name("bytetrack", TrackerConfig::default()).unwrap();
        SceneStage::new(tracker, Arc::new(SceneConfig::default()), None)
    }

    fn frame() -> Frame {
        use crate::ingest::{Geometry, ScaleTarget};
        let target = ScaleTarget {
            width: 8,
            height: 8,
            letterbox: false,
            order: ColorOrder::Rgb,
        };
        Frame {
            seq: 0,
            pts_ms: Some(0),
            width: 16,
            height: 8,
            pixels: vec![0; 8 * 8 * 3],
            order: ColorOrder::Rgb,
            geometry: Geometry::new(&target, 16, 8),
            received: std::time::Instant::now(),
            source: 0,
        }
    }

    #[test]
    fn ids_are_stable_and_low_scores_hidden() {
        let mut s = stage();
        let f = frame();
        let mut ids = Vec::new();
        let mut msgs = Vec::new();
        for i in 0..10 {
            let x = 0.1 + i as f32 * 0.01;
            // The low-score detection elsewhere never shows (nor starts a track).
            let r = s.frame(&f, i * 100, &[det(x, 0.9), det(0.7, 0.2)], 0.5, "cam");
            assert_eq!(r.ids.len(), 1, "sub-threshold detections are dropped");
            ids.push(r.ids[0].clone());
            msgs.extend(r.messages);
        }
        assert!(ids[0].is_none(), "not confirmed on the first hit");
        let id = ids[9].clone().unwrap();
        assert!(ids[2..].iter().all(|i| i.as_deref() == Some(id.as_str())));
        msgs.extend(s.finish());
        let types: Vec<_> = msgs
            .iter()
            .filter_map(|m| m.property("eventType"))
            .collect();
        assert_eq!(types.iter().filter(|t| **t == "new").count(), 1);
        assert_eq!(
            types.iter().filter(|t| **t == "end").count(),
            1,
            "{types:?}"
        );
    }

    #[test]
    fn picture_has_the_original_aspect() {
        let p = frame_picture(&frame()).unwrap();
        assert_eq!(p.dimensions(), (16, 8));
    }
}
