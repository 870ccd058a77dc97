//! The per-track event state machine, after Frigate's: `new` when a track first appears,
//! `update` only on a meaningful change, `end` when it ends.
//!
//! Meaningful: a zone entered or left, loitering, a line crossed, becoming stationary or
//! active again, a better snapshot, or the heartbeat. A stationary track sends nothing but
//! heartbeats; a better snapshot found meanwhile rides on the next heartbeat or `active`
//! (as a `snapshot` event inference next to it).
//! Zone and line events still go out while stationary, so events always agree with counts.

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
        let t = self.tracks.entry(obs.id.clone()).or_insert_with(|| {
            reasons.push(Reason::New);
            Track {
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
                snapshot: None,
                snapshot_pending: false,
                seq: 0,
            }
        });
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
    pub fn set_snapshot(&mut self, id: &str, reference: Option<String>) -> bool {
        self.tracks
            .get_mut(id)
            .map(|t| t.snapshot = reference)
            .is_some()
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: &str, x: f32, score: f32) -> Observation {
        Observation {
            id: id.into(),
            label: "car".into(),
            bbox: BBox {
                l: x,
                t: 0.5,
                w: 0.2,
                h: 0.1,
            },
            score,
        }
    }

    fn names(e: &Option<TrackEvent>) -> Vec<&'static str> {
        e.as_ref()
            .map(|e| e.reasons.iter().map(Reason::name).collect())
            .unwrap_or_default()
    }

    #[test]
    fn new_then_quiet_then_heartbeat_then_end() {
        let mut ev = Events::new(60.0, 0.0);
        let e = ev
            .observe(&obs("a", 0.1, 0.5), 1000, Changes::default())
            .unwrap();
        assert_eq!(
            (e.event_type, e.seq, e.first_seen_ms),
            (EventType::New, 0, 1000)
        );
        // Moving, scores changing, no zones: nothing to say for 60 s.
        for i in 1..600u64 {
            let x = 0.1 + (i % 2) as f32 * 0.1;
            assert!(
                ev.observe(&obs("a", x, 0.6), 1000 + i * 100, Changes::default())
                    .is_none(),
                "{i}"
            );
        }
        let hb = ev
            .observe(&obs("a", 0.1, 0.9), 61_000, Changes::default())
            .unwrap();
        assert_eq!(names(&Some(hb.clone())), vec!["heartbeat"]);
        assert_eq!(
            (hb.event_type, hb.seq, hb.top_score, hb.last_seen_ms),
            (EventType::Update, 1, 0.9, 61_000)
        );
        let end = ev.end("a", 61_100).unwrap();
        assert_eq!(
            (end.event_type, end.seq, end.last_seen_ms, end.pts_ms),
            (EventType::End, 2, 61_000, 61_100)
        );
        assert!(ev.end("a", 61_200).is_none());
        assert!(ev.is_empty());
    }

    #[test]
    fn zone_and_line_changes_are_news() {
        let mut ev = Events::new(60.0, 0.0);
        ev.observe(&obs("a", 0.1, 0.5), 0, Changes::default());
        let c = Changes {
            current_zones: vec!["lot".into()],
            zones: vec![ZoneChange::Entered("lot".into())],
            lines: vec![LineCrossing {
                line: "gate".into(),
                direction: Direction::In,
            }],
        };
        let e = ev.observe(&obs("a", 0.1, 0.5), 100, c).unwrap();
        assert_eq!(names(&Some(e.clone())), vec!["zoneEntered", "lineCrossed"]);
        assert_eq!(
            (e.current_zones.clone(), e.entered_zones.clone()),
            (vec!["lot".to_string()], vec!["lot".to_string()])
        );
        let c = Changes {
            current_zones: vec![],
            zones: vec![ZoneChange::Left("lot".into())],
            lines: vec![],
        };
        let e = ev.observe(&obs("a", 0.1, 0.5), 200, c).unwrap();
        assert!(e.current_zones.is_empty());
        assert_eq!(e.entered_zones, vec!["lot"]);
    }

    #[test]
    fn stationary_then_active() {
        let mut ev = Events::new(60.0, 10.0);
        ev.observe(&obs("car", 0.3, 0.8), 0, Changes::default());
        // Jitter well under 20% of the box width (0.2 -> 0.04).
        let mut got = Vec::new();
        for i in 1..=150u64 {
            let x = 0.3 + if i % 2 == 0 { 0.01 } else { -0.01 };
            if let Some(e) = ev.observe(&obs("car", x, 0.8), i * 100, Changes::default()) {
                got.push((i, e));
            }
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].0, names(&Some(got[0].1.clone()))),
            (100, vec!["stationary"])
        );
        assert!(got[0].1.stationary);
        // A better snapshot while stationary waits...
        assert!(ev.snapshot_improved("car"));
        assert!(ev.set_snapshot("car", Some("cam/2026-01-01/car.jpg".into())));
        assert!(ev
            .observe(&obs("car", 0.3, 0.8), 15_100, Changes::default())
            .is_none());
        // ...for the car to drive off: `active` carries the new reference.
        let e = ev
            .observe(&obs("car", 0.4, 0.8), 15_200, Changes::default())
            .unwrap();
        assert_eq!(names(&Some(e.clone())), vec!["active", "snapshot"]);
        assert!(!e.stationary);
        assert_eq!(e.snapshot.as_deref(), Some("cam/2026-01-01/car.jpg"));
        assert!(!ev.snapshot_improved("nobody"));
    }

    #[test]
    fn stationary_track_heartbeats_carry_pending_snapshot() {
        let mut ev = Events::new(60.0, 10.0);
        ev.observe(&obs("car", 0.3, 0.8), 0, Changes::default());
        let mut got = Vec::new();
        for i in 1..=1300u64 {
            if i == 200 {
                ev.snapshot_improved("car");
            }
            if let Some(e) = ev.observe(&obs("car", 0.3, 0.8), i * 100, Changes::default()) {
                got.push((i * 100, names(&Some(e))));
            }
        }
        let want = vec![
            (10_000, vec!["stationary"]),
            (70_000, vec!["heartbeat", "snapshot"]),
            (130_000, vec!["heartbeat"]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn snapshot_improvement_is_news_when_moving() {
        let mut ev = Events::new(60.0, 10.0);
        ev.observe(&obs("a", 0.1, 0.5), 0, Changes::default());
        ev.snapshot_improved("a");
        let e = ev.observe(&obs("a", 0.2, 0.5), 100, Changes::default());
        assert_eq!(names(&e), vec!["snapshot"]);
        assert!(ev
            .observe(&obs("a", 0.3, 0.5), 200, Changes::default())
            .is_none());
    }

    #[test]
    fn stale_tracks_and_backwards_time() {
        let mut ev = Events::new(60.0, 10.0);
        ev.observe(&obs("a", 0.1, 0.5), 5_000, Changes::default());
        ev.observe(&obs("b", 0.1, 0.5), 1_000, Changes::default());
        assert_eq!(ev.stale(34_000, 30_000), vec!["b".to_string()]);
        assert_eq!(
            ev.stale(40_000, 1_000),
            vec!["b".to_string(), "a".to_string()]
        );
        // Time going backwards neither panics nor fakes news.
        assert!(ev
            .observe(&obs("a", 0.1, 0.5), 0, Changes::default())
            .is_none());
        assert!(ev.stale(0, 0).is_empty());
    }
}
