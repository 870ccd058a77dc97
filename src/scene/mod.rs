//! Scene understanding on top of tracks: zones, lines, per-track events and counts.
//!
//! Pure logic: no I/O, no threads, no wall clock of its own (the batcher is handed `now`). Time is the stream's `pts_ms`, so the same
//! frames always give the same messages. The pipeline feeds one [`FrameObservations`] per
//! frame to [`Scene::observe`] and publishes what comes back.

pub mod batch;
pub mod config;
pub mod counts;
pub mod events;
pub mod geometry;
pub mod lines;
pub mod message;
pub mod zones;

pub use batch::EventBatch;
pub use config::{LineConfig, SceneConfig, SceneConfigError, ZoneConfig};
pub use events::{EventType, Reason, TrackEvent};
pub use geometry::Direction;
pub use message::{SceneMessage, OUTPUT_COUNTS, OUTPUT_EVENTS};

use crate::defaults;
use crate::engine::BBox;
use counts::{Counts, CountsSnapshot};
use events::{secs_to_ms, Changes, Events};
use lines::Lines;
use zones::Zones;

/// One confirmed track as seen on one frame (matched, or coasting on its prediction).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub id: String,
    pub label: String,
    /// Normalized l, t, w, h in 0..1.
    pub bbox: BBox,
    pub score: f32,
}

/// What the tracker says about one frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameObservations<'a> {
    /// Stream time of the frame.
    pub pts_ms: u64,
    /// Confirmed tracks alive this frame, matched or coasting.
    pub objects: &'a [Observation],
    /// Track ids that ended this frame.
    pub ended: &'a [String],
}

#[derive(Debug)]
pub struct Scene {
    config: SceneConfig,
    zones: Zones,
    lines: Lines,
    events: Events,
    counts: Counts,
}

impl Scene {
    /// The config should have passed [`SceneConfig::validate`]; out-of-range values are
    /// clamped rather than trusted.
    pub fn new(config: SceneConfig) -> Self {
        Scene {
            zones: Zones::new(&config.zones),
            lines: Lines::new(&config.lines),
            events: Events::new(config.heartbeat_secs, config.stationary_secs),
            counts: Counts::new(
                secs_to_ms(config.counts_every_secs),
                secs_to_ms(config.counts_min_secs),
            ),
            config,
        }
    }

    pub fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// One frame in, its messages out: track events in object order, then ends, then at
    /// most one counts message.
    pub fn observe(&mut self, frame: &FrameObservations) -> Vec<SceneMessage> {
        let pts = frame.pts_ms;
        let mut out = Vec::new();
        for o in frame.objects {
            let zones = self.zones.update(&o.id, &o.label, &o.bbox, pts);
            let lines = self.lines.update(&o.id, &o.label, &o.bbox);
            let changes = Changes {
                current_zones: self.zones.current(&o.id),
                zones,
                lines,
            };
            if let Some(e) = self.events.observe(o, pts, changes) {
                out.push(SceneMessage::from_event(&e));
            }
        }
        // Tracks the tracker dropped without saying so end here, so state stays bounded.
        let stale = self
            .events
            .stale(pts, secs_to_ms(defaults::TRACK_FORGET_SECS));
        for id in frame.ended.iter().chain(stale.iter()) {
            if let Some(e) = self.events.end(id, pts) {
                out.push(SceneMessage::from_event(&e));
            }
            self.zones.remove(id);
            self.lines.remove(id);
        }
        if let Some(c) = self.counts.tick(self.counts_now(pts)) {
            out.push(SceneMessage::from_counts(&c));
        }
        self.events.frame_done();
        out
    }

    /// The last frame (end of stream, model swap): like `observe`, and counts held back by
    /// `countsMinSecs` go out now rather than never.
    pub fn observe_last(&mut self, frame: &FrameObservations) -> Vec<SceneMessage> {
        let mut out = self.observe(frame);
        let sent = out.iter().any(|m| m.output == OUTPUT_COUNTS);
        if !sent {
            if let Some(c) = self.counts.flush(self.counts_now(frame.pts_ms)) {
                out.push(SceneMessage::from_counts(&c));
            }
        }
        out
    }

    /// What is in each zone and has crossed each line now (a counts message outside the
    /// counts schedule, for the live view); `None` without zones and lines.
    pub fn live_counts(&self, pts_ms: u64) -> Option<SceneMessage> {
        if self.config.zones.is_empty() && self.config.lines.is_empty() {
            return None;
        }
        Some(SceneMessage::from_counts(&self.counts_now(pts_ms)))
    }

    fn counts_now(&self, pts_ms: u64) -> CountsSnapshot {
        CountsSnapshot {
            zones: self.zones.present(),
            lines: self.lines.totals(),
            pts_ms,
        }
    }

    /// New zones, lines and knobs without losing track state: members of a removed zone
    /// just stop being counted, a moved line crosses nothing by moving, and no event is
    /// sent for the change itself. The next counts message goes out on the next frame.
    pub fn set_config(&mut self, config: SceneConfig) {
        self.zones.set_config(&config.zones);
        self.lines.set_config(&config.lines);
        self.events.heartbeat_ms = secs_to_ms(config.heartbeat_secs).max(1);
        self.events.stationary_ms = secs_to_ms(config.stationary_secs);
        self.counts.set_every_ms(
            secs_to_ms(config.counts_every_secs),
            secs_to_ms(config.counts_min_secs),
        );
        self.counts.clear();
        self.config = config;
    }

    /// Forget every track and counter (source change, model swap): no `end` events are
    /// sent for the forgotten tracks, since their ids will not come back.
    pub fn reset(&mut self) {
        self.zones.clear();
        self.lines.clear();
        self.events.clear();
        self.counts.clear();
    }

    /// The snapshot code found a better picture of this track: its next observation sends
    /// an `update` (a stationary track's waits for its heartbeat). False: unknown track.
    pub fn snapshot_improved(&mut self, track_id: &str) -> bool {
        self.events.snapshot_improved(track_id)
    }

    /// Where this track's snapshot lives (file path or blob name), or `None`; carried by
    /// every later message about the track. False: a track not seen yet, whose `new` on the
    /// next `observe` carries the reference.
    pub fn set_snapshot(&mut self, track_id: &str, reference: Option<String>) -> bool {
        self.events.set_snapshot(track_id, reference)
    }

    /// Live tracks the scene holds state for.
    pub fn tracks(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::engine::BBox;

    /// A box whose bottom centre is (x, y); binary-exact sizes, so a foot meant to be on an
    /// edge is exactly on it.
    pub fn foot(x: f32, y: f32) -> BBox {
        BBox {
            l: x - 0.0625,
            t: y - 0.25,
            w: 0.125,
            h: 0.25,
        }
    }
}
