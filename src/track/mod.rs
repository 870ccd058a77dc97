//! Multi-object tracking: detections in, tracks with stable ids out.
//!
//! One interface ([`Tracker`]), one tracker per file, picked by name from [`TRACKERS`]:
//! - `bytetrack`: Kalman filter + two-stage association (ByteTrack); the default;
//! - `sort`: Kalman filter + one-stage Hungarian association on IoU (SORT);
//! - `iou`: greedy IoU against the last box, no motion model (the naive baseline).
//!
//! Trackers are unit-agnostic: boxes may be normalized (the pipeline) or pixels (the CLI), as
//! long as one tracker sees one unit. Ids are `<start-unix-ms>-<n>`, unique per tracker and run.

use serde::Serialize;

use crate::defaults;
use crate::engine::{BBox, Detection};

pub mod assign;
pub mod bytetrack;
pub mod ids;
pub mod iou;
pub mod kalman;
pub mod mot;
pub mod sort;
mod state;
#[cfg(test)]
mod testutil;

pub use bytetrack::ByteTrack;
pub use ids::IdGen;
pub use iou::IouTracker;
pub use sort::Sort;

/// A tracked object, as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Track {
    pub id: String,
    pub label: String,
    pub class_id: usize,
    /// l, t, w, h in the detections' units (the filtered box, or the prediction while missed).
    pub bbox: BBox,
    /// Confidence of the last matched detection.
    pub score: f32,
    pub confirmed: bool,
    /// Frames matched so far.
    pub hits: u32,
    /// Frames since last matched; 0 = matched this frame.
    pub missed: u32,
}

/// What one frame did to the tracks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrackUpdate {
    /// Alive after this frame (confirmed or not, matched or coasting).
    pub tracks: Vec<Track>,
    /// Removed this frame; confirmed ones only (an unconfirmed track never existed for users).
    pub ended: Vec<Track>,
}

pub trait Tracker: Send {
    /// Feeds one frame's detections (possibly none) and returns the tracks after it.
    fn update(&mut self, detections: &[Detection]) -> TrackUpdate;
    /// Frames a confirmed track is kept without a match (M), e.g. when the pipeline turns a
    /// keep-alive in seconds into frames at the stream's rate.
    fn set_max_missed(&mut self, frames: u32);
    /// Forgets every track (source change, model swap); ids stay unique across resets.
    fn reset(&mut self);
    fn name(&self) -> &'static str;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackError {
    #[error("unknown tracker '{name}'; available: {available}")]
    UnknownTracker { name: String, available: String },
    #[error("invalid tracker setting: {0}")]
    Config(String),
}

/// Tuning shared by all trackers (each uses the parts that apply to it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrackerConfig {
    /// Hits before a track is confirmed (N).
    pub min_hits: u32,
    /// Frames a confirmed track is kept without a match (M).
    pub max_missed: u32,
    /// Detections at or above this are "high" (first stage); below are "low" (second stage).
    pub high_score: f32,
    /// Detections below this are ignored.
    pub low_score: f32,
    /// An unmatched detection starts a new track only at or above this.
    pub new_track_score: f32,
    /// Least IoU for a match in the first (high-score) stage, and for SORT and IoU trackers.
    pub match_iou: f32,
    /// Least IoU for a low-score detection to keep a track (second stage).
    pub low_match_iou: f32,
    /// Least IoU for an unconfirmed track to take a high-score detection.
    pub unconfirmed_match_iou: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_hits: defaults::TRACK_MIN_HITS,
            max_missed: defaults::TRACK_MAX_MISSED,
            high_score: defaults::TRACK_HIGH_SCORE,
            low_score: defaults::TRACK_LOW_SCORE,
            new_track_score: defaults::TRACK_NEW_SCORE,
            match_iou: defaults::TRACK_MATCH_IOU,
            low_match_iou: defaults::TRACK_LOW_MATCH_IOU,
            unconfirmed_match_iou: defaults::TRACK_UNCONFIRMED_MATCH_IOU,
        }
    }
}

impl TrackerConfig {
    pub fn validate(&self) -> Result<(), TrackError> {
        let bad =
            |what: &str, v: f32| TrackError::Config(format!("{what} must be within 0..1, got {v}"));
        if self.min_hits == 0 {
            return Err(TrackError::Config("minHits must be at least 1".into()));
        }
        for (what, v) in [
            ("highScore", self.high_score),
            ("lowScore", self.low_score),
            ("newTrackScore", self.new_track_score),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(what, v));
            }
        }
        for (what, v) in [
            ("matchIou", self.match_iou),
            ("lowMatchIou", self.low_match_iou),
            ("unconfirmedMatchIou", self.unconfirmed_match_iou),
        ] {
            // 0 would match boxes that do not overlap at all.
            if !(v > 0.0 && v <= 1.0) {
                return Err(TrackError::Config(format!(
                    "{what} must be within (0, 1], got {v}"
                )));
            }
        }
        if self.low_score > self.high_score {
            return Err(TrackError::Config(format!(
                "lowScore ({}) must not exceed highScore ({})",
                self.low_score, self.high_score
            )));
        }
        Ok(())
    }
}

pub type MakeTracker = fn(TrackerConfig) -> Box<dyn Tracker>;

/// Every tracker, by the name `--tracker` takes; the first is the default.
pub const TRACKERS: &[(&str, MakeTracker)] = &[
    ("bytetrack", |c| Box::new(ByteTrack::new(c))),
    ("sort", |c| Box::new(Sort::new(c))),
    ("iou", |c| Box::new(IouTracker::new(c))),
];

pub fn names() -> Vec<&'static str> {
    TRACKERS.iter().map(|(n, _)| *n).collect()
}

/// Builds the tracker called `name` with `config` (validated first).
pub fn by_name(name: &str, config: TrackerConfig) -> Result<Box<dyn Tracker>, TrackError> {
    config.validate()?;
    let (_, make) =
        TRACKERS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| TrackError::UnknownTracker {
                name: name.to_string(),
                available: names().join(", "),
            })?;
    Ok(make(config))
}

/// A detection the trackers can use: finite, positive-size box and finite score.
pub(crate) fn usable(d: &Detection) -> bool {
    let b = &d.bbox;
    [b.l, b.t, b.w, b.h, d.confidence]
        .iter()
        .all(|v| v.is_finite())
        && b.w > 0.0
        && b.h > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_builds_every_tracker_by_name() {
        for name in names() {
            let t = by_name(name, TrackerConfig::default()).unwrap();
            assert_eq!(t.name(), name);
        }
        let err = by_name("deepsort", TrackerConfig::default()).err().unwrap();
        assert_eq!(
            err.to_string(),
            "unknown tracker 'deepsort'; available: bytetrack, sort, iou"
        );
    }

    #[test]
    fn config_validation() {
        assert!(TrackerConfig::default().validate().is_ok());
        for bad in [
            TrackerConfig {
                min_hits: 0,
                ..Default::default()
            },
            TrackerConfig {
                high_score: 1.5,
                ..Default::default()
            },
            TrackerConfig {
                match_iou: 0.0,
                ..Default::default()
            },
            TrackerConfig {
                low_score: 0.9,
                high_score: 0.5,
                ..Default::default()
            },
            TrackerConfig {
                low_match_iou: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(TrackError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
