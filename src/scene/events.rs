//! The per-track event state machine, after Frigate's: `new` when a track first appears,
//! `update` only on a meaningful change, `end` when it ends.
//!
//! Meaningful: a zone entered or left, loitering, a line crossed, becoming stationary or
//! active again, a better snapshot, or the heartbeat. A stationary track sends nothing but
//! heartbeats; a better snapshot found meanwhile rides on the next heartbeat or `active`
//! (as a `snapshot` event inference next to it).
//! Zone and line events still go out while stationary, so events always agree with counts.
//! A track that ends inside a zone gets `end` (whose `currentZones` says where), not
//! `zoneLeft`, as in Frigate; counts drop it on the same frame.

use std::collections::{BTreeSet, HashMap};

use super::geometry::{centre, Direction, Point};
use super::lines::LineCrossing;
use super::zones::ZoneChange;
use super::Observation;
use crate::defaults;
use crate::engine::BBox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    New,
    Update,
    End,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::New => "new",
            EventType::Update => "update",
            EventType::End => "end",
        }
    }
}

/// Why a message went out; one `type: "event"` inference each.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    New,
    ZoneEntered(String),
    ZoneLeft(String),
    Loitering { zone: String, secs: f32 },
    LineCrossed { line: String, direction: Direction },
    Stationary,
    Active,
    Snapshot,
    Heartbeat,
    End,
}

impl Reason {
    /// The AVA `event.name`.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::ZoneEntered(_) => "zoneEntered",
            Reason::ZoneLeft(_) => "zoneLeft",
            Reason::Loitering { .. } => "loitering",
            Reason::LineCrossed { .. } => "lineCrossed",
            Reason::Stationary => "stationary",
            Reason::Active => "active",
            Reason::Snapshot => "snapshot",
            Reason::Heartbeat => "heartbeat",
            Reason::End => "end",
        }
    }
}

/// One message's worth of news about one track, with the track's state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackEvent {
    pub event_type: EventType,
    pub reasons: Vec<Reason>,
    pub track_id: String,
    pub label: String,
    /// Stream time of this event.
    pub pts_ms: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub bbox: BBox,
    pub score: f32,
    pub top_score: f32,
    /// Zones the track is in now (inertia-confirmed), in name order.
    pub current_zones: Vec<String>,
    /// Zones the track has ever entered, in name order.
    pub entered_zones: Vec<String>,
    pub stationary: bool,
    pub snapshot: Option<String>,
    /// 0 for `new`, then one more per message about this track.
    pub seq: u64,
}

/// What the zone and line rooms saw for one observation.
#[derive(Debug, Default)]
pub struct Changes {
    pub current_zones: Vec<String>,
    pub zones: Vec<ZoneChange>,
    pub lines: Vec<LineCrossing>,
}

#[derive(Debug)]
struct Track {
    label: String,
    first_seen_ms: u64,
    last_seen_ms: u64,
    bbox: BBox,
    score: f32,
    top_score: f32,
    current: Vec<String>,
    entered: BTreeSet<String>,
    stationary: bool,
    /// Where the centre was when it last moved, and when.
    anchor: Point,
    anchor_ms: u64,
    last_msg_ms: u64,
    snapshot: Option<String>,
    snapshot_pending: bool,
    seq: u64,
}

#[derive(Debug)]
pub struct Events {
    tracks: HashMap<String, Track>,
    /// Snapshots taken on the frame a track is first seen, before it exists here: its `new`
    /// carries them (no extra `update`). Cleared every frame.
    early: HashMap<String, String>,
    pub heartbeat_ms: u64,
    /// 0: never stationary.
    pub stationary_ms: u64,
}

/// Seconds to whole milliseconds; config validation keeps them finite and bounded.
pub fn secs_to_ms(secs: f32) -> u64 {
    (secs.max(0.0) as f64 * 1000.0).round() as u64
}

impl Events {
    pub fn new(heartbeat_secs: f32, stationary_secs: f32) -> Self {
        Events {
            tracks: HashMap::new(),
            early: HashMap::new(),
            heartbeat_ms: secs_to_ms(heartbeat_secs).max(1),
            stationary_ms: secs_to_ms(stationary_secs),
        }
    }

    /// One observation of a live track: its event, if this frame is news.
    pub fn observe(
        &mut self,
        obs: &Observation,
        pts_ms: u64,
        changes: Changes,
    ) -> Option<TrackEvent> {
        let mut reasons = Vec::new();
        let c = centre(&obs.bbox);
        if !self.tracks.contains_key(&obs.id) {
            reasons.push(Reason::New);
            let t = Track {
                label: obs.label.clone(),
                first_seen_ms: pts_ms,
                last_seen_ms: pts_ms,
                bbox: obs.bbox,
                score: obs.score,
                top_score: obs.score,
                current: Vec::new(),
                entered: BTreeSet::new(),
                stationary: false,
                anchor: c,
                anchor_ms: pts_ms,
                last_msg_ms: pts_ms,
                snapshot: self.early.remove(&obs.id),
                snapshot_pending: false,
                seq: 0,
            };
            self.tracks.insert(obs.id.clone(), t);
        }
        let t = self.tracks.get_mut(&obs.id)?;
        t.label.clone_from(&obs.label);
        t.last_seen_ms = pts_ms;
        t.bbox = obs.bbox;
        t.score = obs.score;
        if obs.score > t.top_score || t.top_score.is_nan() {
            t.top_score = obs.score;
        }
        t.current = changes.current_zones;
        for z in changes.zones {
            reasons.push(match z {
                ZoneChange::Entered(n) => {
                    t.entered.insert(n.clone());
                    Reason::ZoneEntered(n)
                }
                ZoneChange::Left(n) => Reason::ZoneLeft(n),
                ZoneChange::Loitering { zone, secs } => Reason::Loitering { zone, secs },
            });
        }
        for l in changes.lines {
            reasons.push(Reason::LineCrossed {
                line: l.line,
                direction: l.direction,
            });
        }
        let f = defaults::STATIONARY_MOVE;
        let moved = (c[0] - t.anchor[0]).abs() > f * obs.bbox.w
            || (c[1] - t.anchor[1]).abs() > f * obs.bbox.h;
        if moved {
            t.anchor = c;
            t.anchor_ms = pts_ms;
            if t.stationary {
                t.stationary = false;
                reasons.push(Reason::Active);
            }
        } else if !t.stationary
            && self.stationary_ms > 0
            && pts_ms.saturating_sub(t.anchor_ms) >= self.stationary_ms
        {
            t.stationary = true;
            reasons.push(Reason::Stationary);
        }
        if reasons.is_empty() && pts_ms.saturating_sub(t.last_msg_ms) >= self.heartbeat_ms {
            reasons.push(Reason::Heartbeat);
        }
        // A better snapshot is news on its own while moving; while stationary it waits
        // for the next message (heartbeat or active) and is named there.
        if t.snapshot_pending && (!t.stationary || !reasons.is_empty()) {
            reasons.push(Reason::Snapshot);
        }
        if reasons.is_empty() {
            return None;
        }
        let event_type = if reasons[0] == Reason::New {
            EventType::New
        } else {
            EventType::Update
        };
        Some(Self::emit(&obs.id, t, event_type, reasons, pts_ms))
    }

    /// The track ended: its `end` event, if it was known.
    pub fn end(&mut self, id: &str, pts_ms: u64) -> Option<TrackEvent> {
        let mut t = self.tracks.remove(id)?;
        Some(Self::emit(
            id,
            &mut t,
            EventType::End,
            vec![Reason::End],
            pts_ms,
        ))
    }

    fn emit(
        id: &str,
        t: &mut Track,
        event_type: EventType,
        reasons: Vec<Reason>,
        pts_ms: u64,
    ) -> TrackEvent {
        if event_type != EventType::New {
            t.seq += 1;
        }
        t.last_msg_ms = pts_ms;
        t.snapshot_pending = false;
        TrackEvent {
            event_type,
            reasons,
            track_id: id.to_string(),
            label: t.label.clone(),
            pts_ms,
            first_seen_ms: t.first_seen_ms,
            last_seen_ms: t.last_seen_ms,
            bbox: t.bbox,
            score: t.score,
            top_score: t.top_score,
            current_zones: t.current.clone(),
            entered_zones: t.entered.iter().cloned().collect(),
            stationary: t.stationary,
            snapshot: t.snapshot.clone(),
            seq: t.seq,
        }
    }

    /// The snapshot code found a better picture: the next observation sends `update`.
    pub fn snapshot_improved(&mut self, id: &str) -> bool {
        self.tracks
            .get_mut(id)
            .map(|t| t.snapshot_pending = true)
            .is_some()
    }

    /// Where the track's snapshot is (a path or blob name); sent with its next message.
    /// False for a track not seen yet: the reference is kept for its `new` on this frame.
    pub fn set_snapshot(&mut self, id: &str, reference: Option<String>) -> bool {
        match self.tracks.get_mut(id) {
            Some(t) => {
                t.snapshot = reference;
                true
            }
            None => {
                if let Some(r) = reference {
                    self.early.insert(id.to_string(), r);
                }
                false
            }
        }
    }

    /// End of a frame: early snapshots of tracks that did not show up are dropped.
    pub fn frame_done(&mut self) {
        self.early.clear();
    }

    /// Tracks not observed for longer than `forget_ms`, oldest first then by id.
    pub fn stale(&self, pts_ms: u64, forget_ms: u64) -> Vec<String> {
        let mut v: Vec<(u64, &String)> = self
            .tracks
            .iter()
            .filter(|(_, t)| pts_ms.saturating_sub(t.last_seen_ms) > forget_ms)
            .map(|(id, t)| (t.last_seen_ms, id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id.clone()).collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tracks.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    pub fn clear(&mut self) {
        self.tracks.clear();
        self.early.clear();
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
