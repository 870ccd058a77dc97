//! The page's events list: scene messages flattened to one row per event, kept in a
//! bounded ring (the last N), plus the latest zone and line counts. Pure: no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::scene::{SceneMessage, OUTPUT_COUNTS};

/// One row of the events list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UiEvent {
    /// Increases by one per event: the page asks for what came after the last it has.
    pub id: u64,
    pub time: String,
    pub pts_ms: u64,
    /// `new`, `zoneEntered`, `lineCrossed`, `end`, ...
    pub name: String,
    /// `new`, `update` or `end`.
    pub event_type: String,
    pub track: String,
    pub label: String,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Snapshot reference relative to the snapshots folder (served under `/snap/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// The last `capacity` events and the latest counts per zone and line.
#[derive(Debug)]
pub struct EventRing {
    capacity: usize,
    next_id: u64,
    events: VecDeque<UiEvent>,
    /// (source, `zone:door` / `line:gate`) -> the count message's properties.
    counts: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Snapshot references named by events lately (newest last, bounded): `/snap/` waits for
    /// these to be written, and answers 404 at once for anything else.
    named: VecDeque<(Instant, String)>,
}

/// Snapshot references remembered for `/snap/`'s wait.
const NAMED_MAX: usize = 256;

impl EventRing {
    pub fn new(capacity: usize) -> EventRing {
        EventRing {
            capacity: capacity.max(1),
            next_id: 1,
            events: VecDeque::new(),
            counts: BTreeMap::new(),
            named: VecDeque::new(),
        }
    }

    /// Takes in one frame's scene messages; `time` is the wall clock shown on the page.
    pub fn push(&mut self, messages: &[SceneMessage], time: &str) {
        self.push_from("", messages, time);
    }

    /// Like `push`, for one source's messages: counts are kept per source.
    pub fn push_from(&mut self, source: &str, messages: &[SceneMessage], time: &str) {
        for m in messages {
            if m.output == OUTPUT_COUNTS {
                self.take_counts(source, m);
                continue;
            }
            let entity = m.body.inferences.iter().find_map(|i| i.entity.as_ref());
            for ev in m.body.inferences.iter().filter_map(|i| i.event.as_ref()) {
                let p = &ev.properties;
                let row = UiEvent {
                    id: self.next_id,
                    time: time.to_string(),
                    pts_ms: m.body.frame.pts_ms,
                    name: ev.name.clone(),
                    event_type: p.get("eventType").cloned().unwrap_or_default(),
                    track: entity.map(|e| e.id.clone()).unwrap_or_default(),
                    label: entity.map(|e| e.tag.value.clone()).unwrap_or_default(),
                    // f64 from f32 prints 0.6567999720573425; the message says 0.6568.
                    score: entity
                        .map(|e| (e.tag.confidence as f64 * 10_000.0).round() / 10_000.0)
                        .unwrap_or(0.0),
                    zone: p.get("zone").cloned(),
                    line: p.get("line").cloned(),
                    direction: p.get("direction").cloned(),
                    snapshot: p.get("snapshot").cloned(),
                };
                self.next_id += 1;
                if let Some(s) = &row.snapshot {
                    if self.named.len() == NAMED_MAX {
                        self.named.pop_front();
                    }
                    self.named.push_back((Instant::now(), s.clone()));
                }
                if self.events.len() == self.capacity {
                    self.events.pop_front();
                }
                self.events.push_back(row);
            }
        }
    }

    /// An event named this snapshot (or the snapshot whose crop this is) within `within`.
    pub fn named_lately(&self, reference: &str, within: Duration) -> bool {
        let whole = match reference.strip_suffix("-crop.jpg") {
            Some(stem) => format!("{stem}.jpg"),
            None => reference.to_string(),
        };
        self.named
            .iter()
            .rev()
            .take_while(|(t, _)| t.elapsed() <= within)
            .any(|(_, r)| *r == whole)
    }

    fn take_counts(&mut self, source: &str, m: &SceneMessage) {
        for ev in m.body.inferences.iter().filter_map(|i| i.event.as_ref()) {
            let key = match (ev.properties.get("zone"), ev.properties.get("line")) {
                (Some(z), _) => format!("zone:{z}"),
                (None, Some(l)) => format!("line:{l}"),
                _ => continue,
            };
            // Bounded by the scene's own shape limit; a stale shape is dropped on reset.
            self.counts
                .insert((source.to_string(), key), ev.properties.clone());
        }
    }

    /// Forgets counts of shapes that no longer exist (after zones change).
    pub fn retain_counts(&mut self, keep: impl Fn(&str) -> bool) {
        self.counts.retain(|(_, k), _| keep(k));
    }

    /// Events after `after`, newest first, at most `limit`.
    pub fn since(&self, after: u64, limit: usize) -> Vec<UiEvent> {
        self.events
            .iter()
            .rev()
            .take_while(|e| e.id > after)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Counts per shape: `zone:door`, or with several sources `zone:door @ cam1`.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let first = self.counts.keys().next().map(|(s, _)| s);
        let several = self.counts.keys().any(|(s, _)| Some(s) != first);
        self.counts
            .iter()
            .map(|((source, key), p)| {
                let k = if several {
                    format!("{key} @ {source}")
                } else {
                    key.clone()
                };
                (k, p.clone())
            })
            .collect()
    }

    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_message() -> SceneMessage {
        let body: crate::scene::message::SceneBody =
            serde_json::from_str(crate::scene::message::EXAMPLE_EVENT).unwrap();
        SceneMessage {
            output: crate::scene::OUTPUT_EVENTS,
            properties: Vec::new(),
            body,
        }
    }

    fn counts_message() -> SceneMessage {
        let body: crate::scene::message::SceneBody =
            serde_json::from_str(crate::scene::message::EXAMPLE_COUNTS).unwrap();
        SceneMessage {
            output: OUTPUT_COUNTS,
            properties: Vec::new(),
            body,
        }
    }

    #[test]
    fn one_row_per_event_newest_first() {
        let mut r = EventRing::new(10);
        r.push(&[event_message()], "10:00:00");
        let rows = r.since(0, 10);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "lineCrossed");
        assert_eq!(rows[0].line.as_deref(), Some("gate"));
        assert_eq!(rows[0].direction.as_deref(), Some("in"));
        assert_eq!(rows[1].name, "zoneEntered");
        assert_eq!(rows[1].zone.as_deref(), Some("door"));
        assert_eq!(rows[1].track, "1767261600-7");
        assert_eq!(rows[1].label, "person");
        assert_eq!(rows[1].event_type, "update");
        assert_eq!(
            rows[1].snapshot.as_deref(),
            Some("cam1/2026-01-01/1767261600-7.jpg")
        );
        assert!(rows[0].id > rows[1].id);
        assert_eq!(r.since(rows[0].id, 10), vec![]);
        assert_eq!(r.since(rows[1].id, 10).len(), 1);
    }

    #[test]
    fn ring_is_bounded_and_ids_keep_growing() {
        let mut r = EventRing::new(3);
        for _ in 0..5 {
            r.push(&[event_message()], "t");
        }
        let rows = r.since(0, 100);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].id, 10);
        assert_eq!(r.last_id(), 10);
        assert_eq!(r.since(0, 2).len(), 2);
    }

    #[test]
    fn counts_keep_the_latest_per_shape_and_are_not_events() {
        let mut r = EventRing::new(3);
        r.push(&[counts_message()], "t");
        assert!(r.since(0, 10).is_empty());
        assert_eq!(r.counts()["zone:door"]["present"], "2");
        assert_eq!(r.counts()["line:gate"]["in"], "5");
        r.retain_counts(|k| k == "zone:door");
        assert_eq!(r.counts().len(), 1);
    }

    #[test]
    fn counts_of_several_sources_stay_apart() {
        let mut r = EventRing::new(3);
        r.push_from("cam1", &[counts_message()], "t");
        assert!(
            r.counts().contains_key("zone:door"),
            "one source: plain names"
        );
        r.push_from("cam2", &[counts_message()], "t");
        let keys: Vec<String> = r.counts().into_keys().collect();
        assert_eq!(
            keys,
            [
                "line:gate @ cam1",
                "line:gate @ cam2",
                "zone:door @ cam1",
                "zone:door @ cam2"
            ]
        );
    }

    #[test]
    fn only_snapshots_named_lately_are_waited_for() {
        let mut r = EventRing::new(3);
        r.push(&[event_message()], "t");
        let d = Duration::from_secs(2);
        assert!(r.named_lately("cam1/2026-01-01/1767261600-7.jpg", d));
        assert!(r.named_lately("cam1/2026-01-01/1767261600-7-crop.jpg", d));
        assert!(!r.named_lately("cam1/2026-01-01/other.jpg", d));
        assert!(!r.named_lately("cam1/2026-01-01/1767261600-7.jpg", Duration::ZERO));
    }
}
