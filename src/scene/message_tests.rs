//! Unit tests for `message.rs`.

use super::*;
use crate::scene::events::EventType;
use crate::scene::geometry::Direction;
use crate::scene::lines::InOut;
use serde_json::Value;

fn example_event() -> TrackEvent {
    TrackEvent {
        event_type: EventType::Update,
        reasons: vec![
            Reason::ZoneEntered("door".into()),
            Reason::LineCrossed {
                line: "gate".into(),
                direction: Direction::In,
            },
        ],
        track_id: "1767261600-7".into(),
        label: "person".into(),
        pts_ms: 73_400,
        first_seen_ms: 70_000,
        last_seen_ms: 73_400,
        bbox: BBox {
            l: 0.4,
            t: 0.25,
            w: 0.125,
            h: 0.5,
        },
        score: 0.81234,
        top_score: 0.9,
        current_zones: vec!["door".into(), "hall".into()],
        entered_zones: vec!["door".into(), "hall".into()],
        stationary: false,
        snapshot: Some("cam1/2026-01-01/1767261600-7.jpg".into()),
        seq: 3,
    }
}

#[test]
fn event_json_matches_the_documented_example() {
    let mut m = SceneMessage::from_event(&example_event());
    m.stamp("cam1", "2026-01-01T10:02:13.000Z");
    let got: Value = serde_json::from_str(&m.to_json().unwrap()).unwrap();
    let want: Value = serde_json::from_str(EXAMPLE_EVENT).unwrap();
    assert_eq!(got, want);
    // Field by field, the parts a consumer relies on.
    let inf = &got["inferences"];
    assert_eq!(inf[0]["type"], "entity");
    assert_eq!(inf[0]["entity"]["id"], "1767261600-7");
    assert_eq!(inf[0]["entity"]["tag"]["value"], "person");
    assert_eq!(inf[1]["type"], "event");
    assert_eq!(inf[1]["relatedInferences"][0], inf[0]["inferenceId"]);
    assert_eq!(inf[1]["event"]["name"], "zoneEntered");
    assert_eq!(inf[1]["event"]["properties"]["zone"], "door");
    assert_eq!(inf[2]["event"]["properties"]["direction"], "in");
    assert_eq!(inf[2]["relatedInferences"][0], inf[0]["inferenceId"]);
    assert_eq!(m.output, "events");
    assert_eq!(m.property("eventType"), Some("update"));
    assert_eq!(m.property("events"), Some("zoneEntered,lineCrossed"));
    assert_eq!(m.property("label"), Some("person"));
    assert_eq!(m.property("zone"), Some("door,hall"));
    assert_eq!(m.property("line"), Some("gate"));
    assert_eq!(m.event_names(), vec!["zoneEntered", "lineCrossed"]);
    // The body round-trips through its own types.
    let back: SceneBody = serde_json::from_value(got).unwrap();
    assert_eq!(back, m.body);
}

#[test]
fn zone_left_names_the_zone_in_properties() {
    let mut e = example_event();
    e.reasons = vec![Reason::ZoneLeft("door".into())];
    e.current_zones.clear();
    e.snapshot = None;
    let m = SceneMessage::from_event(&e);
    assert_eq!(m.property("zone"), Some("door"));
    assert_eq!(m.property("line"), None);
    let p = &m.body.inferences[1].event.as_ref().unwrap().properties;
    assert_eq!(p["currentZones"], "");
    assert!(!p.contains_key("snapshot"));
    e.entered_zones.clear();
    e.reasons = vec![Reason::New];
    e.event_type = EventType::New;
    assert_eq!(SceneMessage::from_event(&e).property("zone"), None);
}

#[test]
fn counts_json_matches_the_documented_example() {
    let c = CountsSnapshot {
        zones: BTreeMap::from([("door".into(), BTreeMap::from([("person".into(), 2)]))]),
        lines: BTreeMap::from([(
            "gate".into(),
            BTreeMap::from([
                ("car".into(), InOut { r#in: 1, out: 0 }),
                ("person".into(), InOut { r#in: 4, out: 3 }),
            ]),
        )]),
        pts_ms: 120_000,
    };
    let m = SceneMessage::from_counts(&c);
    let got: Value = serde_json::from_str(&m.to_json().unwrap()).unwrap();
    assert_eq!(got, serde_json::from_str::<Value>(EXAMPLE_COUNTS).unwrap());
    assert_eq!(got["inferences"][0]["event"]["properties"]["present"], "2");
    assert_eq!(got["inferences"][1]["event"]["properties"]["in"], "5");
    assert_eq!(
        (m.output, m.property("eventType")),
        ("counts", Some("counts"))
    );
}
