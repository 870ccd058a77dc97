//! Unit tests for `events.rs`.

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
