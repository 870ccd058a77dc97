//! Event and counts messages in the Azure Video Analyzer inference schema
//! (`contracts/grpc/inferencing.proto`): the track is an `entity` inference whose
//! `entity.id` is the track id; each piece of news is a `type: "event"` inference
//! (`event.name`, `event.properties` as string -> string) that points at the entity
//! through `relatedInferences`. See [`EXAMPLE_EVENT`] and [`EXAMPLE_COUNTS`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counts::CountsSnapshot;
use super::events::{Reason, TrackEvent};
use crate::engine::BBox;

/// IoT Edge output names.
pub const OUTPUT_EVENTS: &str = "events";
pub const OUTPUT_COUNTS: &str = "counts";

/// A track entering a zone and crossing a line on the same frame (after `stamp`).
pub const EXAMPLE_EVENT: &str = r#"{
  "timestamp": "2026-01-01T10:02:13.000Z", "source": "cam1", "frame": {"pts_ms": 73400},
  "inferences": [
    {"type": "entity", "subtype": "objectTracking", "inferenceId": "1767261600-7:3", "sequenceId": "1767261600-7",
     "entity": {"id": "1767261600-7", "tag": {"value": "person", "confidence": 0.8123},
                "box": {"l": 0.4, "t": 0.25, "w": 0.125, "h": 0.5}}},
    {"type": "event", "subtype": "trackEvent", "inferenceId": "1767261600-7:3:1", "relatedInferences": ["1767261600-7:3"],
     "event": {"name": "zoneEntered", "properties": {
       "eventType": "update", "zone": "door", "firstSeenMs": "70000", "lastSeenMs": "73400", "topScore": "0.9",
       "currentZones": "door,hall", "enteredZones": "door,hall", "stationary": "false",
       "snapshot": "cam1/2026-01-01/1767261600-7.jpg"}}},
    {"type": "event", "subtype": "trackEvent", "inferenceId": "1767261600-7:3:2", "relatedInferences": ["1767261600-7:3"],
     "event": {"name": "lineCrossed", "properties": {
       "eventType": "update", "line": "gate", "direction": "in", "firstSeenMs": "70000", "lastSeenMs": "73400",
       "topScore": "0.9", "currentZones": "door,hall", "enteredZones": "door,hall", "stationary": "false",
       "snapshot": "cam1/2026-01-01/1767261600-7.jpg"}}}
  ]
}"#;

/// Counts for one zone and one line.
pub const EXAMPLE_COUNTS: &str = r#"{
  "frame": {"pts_ms": 120000},
  "inferences": [
    {"type": "event", "subtype": "zoneCount", "inferenceId": "counts:120000:1",
     "event": {"name": "zoneCount", "properties": {"zone": "door", "present": "2", "present.person": "2"}}},
    {"type": "event", "subtype": "lineCount", "inferenceId": "counts:120000:2",
     "event": {"name": "lineCount", "properties": {"line": "gate", "in": "5", "out": "3",
       "in.car": "1", "out.car": "0", "in.person": "4", "out.person": "3"}}}
  ]
}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneBody {
    /// Wall-clock time, set by the publisher through [`SceneMessage::stamp`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub frame: SceneFrame,
    pub inferences: Vec<SceneInference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneFrame {
    pub pts_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneInference {
    /// `entity` or `event`.
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: String,
    #[serde(rename = "inferenceId")]
    pub inference_id: String,
    #[serde(
        rename = "sequenceId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_id: Option<String>,
    #[serde(
        rename = "relatedInferences",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_inferences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<SceneEntity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<SceneEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneEntity {
    pub id: String,
    pub tag: SceneTag,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneTag {
    pub value: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneEvent {
    pub name: String,
    pub properties: BTreeMap<String, String>,
}

/// One message to publish: its IoT Edge output, its application properties (for route
/// filters such as `WHERE eventType = 'new'`), and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneMessage {
    /// [`OUTPUT_EVENTS`] or [`OUTPUT_COUNTS`].
    pub output: &'static str,
    /// Events: `eventType` (new|update|end), `events` (event names, comma-separated),
    /// `trackId`, `label`, `zone` (current zones plus any zone named by an event, comma-
    /// separated; absent if none), `line` (lines crossed; absent if none).
    /// Counts: `eventType` = `counts`.
    pub properties: Vec<(String, String)>,
    pub body: SceneBody,
}

impl SceneMessage {
    pub fn from_event(e: &TrackEvent) -> SceneMessage {
        let entity_id = format!("{}:{}", e.track_id, e.seq);
        let mut inferences = vec![SceneInference {
            kind: "entity".into(),
            subtype: "objectTracking".into(),
            inference_id: entity_id.clone(),
            sequence_id: Some(e.track_id.clone()),
            related_inferences: Vec::new(),
            entity: Some(SceneEntity {
                id: e.track_id.clone(),
                tag: SceneTag {
                    value: e.label.clone(),
                    confidence: round4(e.score),
                },
                bbox: BBox {
                    l: round4(e.bbox.l),
                    t: round4(e.bbox.t),
                    w: round4(e.bbox.w),
                    h: round4(e.bbox.h),
                },
            }),
            event: None,
        }];
        let mut zones = e.current_zones.clone();
        let mut lines = Vec::new();
        for (i, r) in e.reasons.iter().enumerate() {
            let mut p = BTreeMap::new();
            match r {
                Reason::ZoneEntered(z) | Reason::ZoneLeft(z) => {
                    p.insert("zone".into(), z.clone());
                    zones.push(z.clone());
                }
                Reason::Loitering { zone, secs } => {
                    p.insert("zone".into(), zone.clone());
                    p.insert("loiterSecs".into(), format!("{:.1}", secs));
                    zones.push(zone.clone());
                }
                Reason::LineCrossed { line, direction } => {
                    p.insert("line".into(), line.clone());
                    p.insert("direction".into(), direction.as_str().into());
                    lines.push(line.clone());
                }
                _ => {}
            }
            p.insert("eventType".into(), e.event_type.as_str().into());
            p.insert("firstSeenMs".into(), e.first_seen_ms.to_string());
            p.insert("lastSeenMs".into(), e.last_seen_ms.to_string());
            p.insert("topScore".into(), round4(e.top_score).to_string());
            p.insert("currentZones".into(), e.current_zones.join(","));
            p.insert("enteredZones".into(), e.entered_zones.join(","));
            p.insert("stationary".into(), e.stationary.to_string());
            if let Some(s) = &e.snapshot {
                p.insert("snapshot".into(), s.clone());
            }
            inferences.push(SceneInference {
                kind: "event".into(),
                subtype: "trackEvent".into(),
                inference_id: format!("{entity_id}:{}", i + 1),
                sequence_id: None,
                related_inferences: vec![entity_id.clone()],
                entity: None,
                event: Some(SceneEvent {
                    name: r.name().into(),
                    properties: p,
                }),
            });
        }
        zones.sort();
        zones.dedup();
        lines.sort();
        lines.dedup();
        let names: Vec<&str> = e.reasons.iter().map(Reason::name).collect();
        let mut properties = vec![
            ("eventType".to_string(), e.event_type.as_str().to_string()),
            ("events".to_string(), names.join(",")),
            ("trackId".to_string(), e.track_id.clone()),
            ("label".to_string(), e.label.clone()),
        ];
        if !zones.is_empty() {
            properties.push(("zone".into(), zones.join(",")));
        }
        if !lines.is_empty() {
            properties.push(("line".into(), lines.join(",")));
        }
        SceneMessage {
            output: OUTPUT_EVENTS,
            properties,
            body: body(e.pts_ms, inferences),
        }
    }

    pub fn from_counts(c: &CountsSnapshot) -> SceneMessage {
        let mut inferences = Vec::new();
        let mut push = |name: &str, properties: BTreeMap<String, String>| {
            inferences.push(SceneInference {
                kind: "event".into(),
                subtype: name.into(),
                inference_id: format!("counts:{}:{}", c.pts_ms, inferences.len() + 1),
                sequence_id: None,
                related_inferences: Vec::new(),
                entity: None,
                event: Some(SceneEvent {
                    name: name.into(),
                    properties,
                }),
            })
        };
        for (zone, per_class) in &c.zones {
            let mut p = BTreeMap::from([("zone".to_string(), zone.clone())]);
            p.insert(
                "present".into(),
                per_class.values().sum::<u32>().to_string(),
            );
            for (class, n) in per_class {
                p.insert(format!("present.{class}"), n.to_string());
            }
            push("zoneCount", p);
        }
        for (line, per_class) in &c.lines {
            let mut p = BTreeMap::from([("line".to_string(), line.clone())]);
            p.insert(
                "in".into(),
                per_class.values().map(|c| c.r#in).sum::<u64>().to_string(),
            );
            p.insert(
                "out".into(),
                per_class.values().map(|c| c.out).sum::<u64>().to_string(),
            );
            for (class, io) in per_class {
                p.insert(format!("in.{class}"), io.r#in.to_string());
                p.insert(format!("out.{class}"), io.out.to_string());
            }
            push("lineCount", p);
        }
        SceneMessage {
            output: OUTPUT_COUNTS,
            properties: vec![("eventType".into(), "counts".into())],
            body: body(c.pts_ms, inferences),
        }
    }

    /// Sets what the pure scene cannot know: the source name and the wall-clock time.
    pub fn stamp(&mut self, source: &str, timestamp: &str) {
        self.body.source = source.to_string();
        self.body.timestamp = timestamp.to_string();
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.body)
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `event.name`s in this message, in order.
    pub fn event_names(&self) -> Vec<&str> {
        self.body
            .inferences
            .iter()
            .filter_map(|i| i.event.as_ref())
            .map(|e| e.name.as_str())
            .collect()
    }
}

fn body(pts_ms: u64, inferences: Vec<SceneInference>) -> SceneBody {
    SceneBody {
        timestamp: String::new(),
        source: String::new(),
        frame: SceneFrame { pts_ms },
        inferences,
    }
}

fn round4(x: f32) -> f32 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
