//! The per-source tracking stage: detections -> tracker -> track ids on detections ->
//! scene events -> best snapshots. One per pipeline (= per source), so a source change is
//! a new tracker; a model swap whose labels differ ends every track and starts over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

use super::snapshot_stage::SnapshotStage;
use crate::engine::{BBox, Detection};
use crate::ingest::Frame;
use crate::model::ColorOrder;
use crate::scene::{EventBatch, FrameObservations, Observation, Scene, SceneConfig, SceneMessage};
use crate::snapshot::BestSnapshots;
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
    snapshots: Option<SnapshotStage>,
    /// Which frame is a track's new best picture, decided here (microseconds); the picture
    /// is built and encoded on the snapshot writer thread, only for frames that improve a track.
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
    /// Each live track's last matched box: a coasting track is shown to the scene where it
    /// was last seen, not on its drifting prediction (no zone or line event from a guess).
    seen: HashMap<String, BBox>,
    /// Keep-alive in seconds, turned into frames at the measured frame interval.
    keep_ms: f32,
    interval_ms: Option<f32>,
    max_missed: u32,
    /// Events on their way out, batched per routing key (`eventsBatchSecs`).
    batch: EventBatch,
}

impl SceneStage {
    pub fn new(
        tracker: Box<dyn Tracker>,
        config: Arc<SceneConfig>,
        snapshots: Option<SnapshotStage>,
    ) -> Self {
        SceneStage {
            tracker,
            scene: Scene::new((*config).clone()),
            batch: EventBatch::new(batch_ms(&config)),
            config,
            snapshots,
            pre: BestSnapshots::new(),
            shown: HashSet::new(),
            snapped: HashSet::new(),
            alive: Vec::new(),
            last_pts: 0,
            seen: HashMap::new(),
            keep_ms: crate::defaults::TRACK_KEEP_SECS * 1000.0,
            interval_ms: None,
            max_missed: 0,
        }
    }

    /// Follows the stream's frame interval (a running average of PTS steps, so one skipped
    /// frame does not swing it) and keeps the tracker's M at `TRACK_KEEP_SECS` of frames.
    fn follow_rate(&mut self, pts_ms: u64) {
        if pts_ms > self.last_pts && self.last_pts > 0 {
            let step = (pts_ms - self.last_pts).min(10_000) as f32;
            let avg = self.interval_ms.map_or(step, |a| 0.9 * a + 0.1 * step);
            self.interval_ms = Some(avg);
        }
        let frames = keep_frames(self.keep_ms, self.interval_ms);
        if frames != self.max_missed {
            self.tracker.set_max_missed(frames);
            self.max_missed = frames;
        }
    }

    /// Applies a new scene config without losing tracks (zones and lines change live).
    /// A new `Arc` holding the same config (a twin patch about something else) changes
    /// nothing, so counts are not reset by unrelated patches.
    pub fn follow_config(&mut self, live: &Arc<SceneConfig>) {
        if !Arc::ptr_eq(live, &self.config) {
            if **live != *self.config {
                self.scene.set_config((**live).clone());
                self.batch.set_window_ms(batch_ms(live));
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
        self.follow_rate(pts_ms);
        self.last_pts = pts_ms;
        let update = self.tracker.update(detections);
        for t in update.tracks.iter().filter(|t| t.missed == 0) {
            self.seen.insert(t.id.clone(), t.bbox);
        }
        // Unconfirmed tracks vanish without an `ended`: keep only the living (bounded).
        if self.seen.len() > update.tracks.len() {
            let live: HashSet<&str> = update.tracks.iter().map(|t| t.id.as_str()).collect();
            self.seen.retain(|id, _| live.contains(id.as_str()));
        }
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
            .map(|t| observation(t, self.seen.get(&t.id)))
            .collect();
        let ended: Vec<String> = update
            .ended
            .iter()
            .filter(|t| self.shown.remove(&t.id))
            .map(|t| t.id.clone())
            .collect();
        self.alive = objects.iter().map(|o| o.id.clone()).collect();
        // Snapshots first: a track confirmed on this frame gets its picture in its `new`.
        let wanted: Vec<(String, &Detection)> = pairs
            .iter()
            .map(|&(t, d)| (matched[t].id.clone(), &detections[d]))
            .filter(|(id, d)| d.confidence >= min_score && self.shown.contains(id))
            .collect();
        self.offer_snapshots(frame, source, &wanted);
        let messages = self.scene.observe(&FrameObservations {
            pts_ms,
            objects: &objects,
            ended: &ended,
        });
        for id in &ended {
            self.snapped.remove(id);
            self.pre.forget(id);
        }
        // Users never see sub-threshold detections, nor the ids of tracks they never saw.
        let ids = ids
            .into_iter()
            .zip(detections)
            .filter(|(_, d)| d.confidence >= min_score)
            .map(|(id, _)| id.filter(|i| self.shown.contains(i)))
            .collect();
        FrameResult { ids, messages }
    }

    /// Counts as of the last frame, as a counts message; `None` without zones and lines.
    pub fn live_counts(&self) -> Option<SceneMessage> {
        self.scene.live_counts(self.last_pts)
    }

    /// This frame's scene messages on their way out: what the event batch lets go now.
    pub fn outgoing(&mut self, messages: Vec<SceneMessage>, now: Instant) -> Vec<SceneMessage> {
        self.batch.push(messages, self.last_pts, now)
    }

    /// Batches whose time has come although no frame came (a stalled source).
    pub fn idle(&mut self, now: Instant) -> Vec<SceneMessage> {
        self.batch.idle(now)
    }

    /// Ends every live track (end of stream, model swap): their `end` events and every
    /// batched event still waiting, then a clean slate for tracker, scene and snapshots.
    pub fn finish(&mut self) -> Vec<SceneMessage> {
        let ended = std::mem::take(&mut self.alive);
        let ends = self.scene.observe_last(&FrameObservations {
            pts_ms: self.last_pts,
            objects: &[],
            ended: &ended,
        });
        let mut out = self.batch.push(ends, self.last_pts, Instant::now());
        out.extend(self.batch.flush());
        self.tracker.reset();
        self.scene.reset();
        self.shown.clear();
        self.seen.clear();
        self.snapped.clear();
        self.pre.clear();
        out
    }

    fn offer_snapshots(&mut self, frame: &Frame, source: &str, wanted: &[(String, &Detection)]) {
        let Some(snap) = &self.snapshots else {
            return;
        };
        let (w, h) = picture_size(frame);
        for (id, det) in wanted {
            if !self.pre.offer(id, det.confidence, det.bbox, w, h) {
                continue;
            }
            if let Some(reference) = snap.offer(source, id, frame, det) {
                let known = self.scene.set_snapshot(id, Some(reference));
                if self.snapped.insert(id.clone()) && known {
                    self.scene.snapshot_improved(id);
                }
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

fn batch_ms(c: &SceneConfig) -> u64 {
    (c.events_batch_secs.clamp(0.0, 3600.0) * 1000.0) as u64
}

/// Frames in `keep_ms` at the frame interval (30 fps until one is measured), at least 1.
fn keep_frames(keep_ms: f32, interval_ms: Option<f32>) -> u32 {
    let interval = interval_ms.unwrap_or(1000.0 / 30.0).max(1.0);
    (keep_ms / interval).ceil().clamp(1.0, 100_000.0) as u32
}

/// A track as the scene sees it, at its last matched box (`seen`) if it has one; the scene
/// wants 0..1.
fn observation(t: &Track, seen: Option<&BBox>) -> Observation {
    let b = seen.unwrap_or(&t.bbox);
    let c = |v: f32| {
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let (l, r) = (c(b.l), c(b.l + b.w));
    let (top, bottom) = (c(b.t), c(b.t + b.h));
    Observation {
        id: t.id.clone(),
        label: t.label.clone(),
        bbox: BBox {
            l,
            t: top,
            w: r - l,
            h: bottom - top,
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
#[path = "scene_stage_tests.rs"]
mod tests;
