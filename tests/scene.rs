//! Scene (zones, lines, events, counts) through its public API, on scripted frames.
//! Frames are 10 fps: frame i is at pts i * 100 ms.

use edgelens::engine::BBox;
use edgelens::scene::{FrameObservations, Observation, Scene, SceneConfig, SceneMessage};
use serde_json::json;

/// An observation whose box's bottom centre (the "foot") is at (x, y).
fn at(id: &str, label: &str, x: f64, y: f64, w: f32, h: f32) -> Observation {
    let (x, y) = (x as f32, y as f32);
    Observation {
        id: id.into(),
        label: label.into(),
        bbox: BBox {
            l: x - w / 2.0,
            t: y - h,
            w,
            h,
        },
        score: 0.8,
    }
}

fn frame(scene: &mut Scene, i: u64, objects: &[Observation], ended: &[&str]) -> Vec<SceneMessage> {
    let ended: Vec<String> = ended.iter().map(|s| s.to_string()).collect();
    scene.observe(&FrameObservations {
        pts_ms: i * 100,
        objects,
        ended: &ended,
    })
}

fn config() -> SceneConfig {
    SceneConfig::from_json(&json!({
        "zones": {
            "walk": {"polygon": [[0.405, 0.0], [0.605, 0.0], [0.605, 1.0], [0.405, 1.0]]},
            "lot": {"polygon": [[0.0, 0.6], [0.3, 0.6], [0.3, 1.0], [0.0, 1.0]], "classes": ["car"], "loiterSecs": 20},
            "bench": {"polygon": [[0.6, 0.1], [0.9, 0.1], [0.9, 0.3], [0.6, 0.3]]}
        },
        // Drawn bottom to top: walking right (left to right on the image) is `in`.
        "lines": {"gate": {"from": [0.805, 0.9], "to": [0.805, 0.2]}},
        // Counts on every change: the exact sequence below tests change detection; the
        // default 5 s coalescing has its own test.
        "countsMinSecs": 0
    }))
    .unwrap()
}

/// (frame, track, event names) per event message; (frame, message) per counts message.
type Log = (Vec<(u64, String, Vec<String>)>, Vec<(u64, SceneMessage)>);

/// A person walks across `walk` and over `gate`; a car parks in `lot` (loiters, goes
/// stationary, gets a better snapshot, heartbeats), then drives off through `walk` and
/// over `gate`; a person flickers at the edge of `bench`, then stands in it.
fn scripted() -> Log {
    scripted_with(config())
}

fn scripted_with(config: SceneConfig) -> Log {
    let mut scene = Scene::new(config);
    let (mut events, mut counts) = (Vec::new(), Vec::new());
    for i in 0..1030u64 {
        let mut objs = Vec::new();
        let mut ended = Vec::new();
        if i <= 90 {
            objs.push(at("p", "person", 0.05 + 0.01 * i as f64, 0.7, 0.05, 0.3));
        } else if i == 91 {
            ended.push("p");
        }
        if i < 1000 {
            let jitter = if i % 2 == 0 { 0.005 } else { -0.005 };
            objs.push(at("c", "car", 0.15 + jitter, 0.8, 0.2, 0.15));
        } else if i <= 1015 {
            objs.push(at(
                "c",
                "car",
                0.16 + 0.05 * (i - 999) as f64,
                0.8,
                0.2,
                0.15,
            ));
        } else if i == 1016 {
            ended.push("c");
        }
        // bench's lower edge is y = 0.3: 0.295 is in, 0.305 out; runs of at most 2 frames.
        if (100..200).contains(&i) {
            let y = if i % 3 == 1 { 0.305 } else { 0.295 };
            objs.push(at("f", "person", 0.75, y, 0.1, 0.3));
        } else if (200..300).contains(&i) {
            objs.push(at("f", "person", 0.75, 0.29, 0.1, 0.3));
        } else if (300..400).contains(&i) {
            let y = if i % 3 == 2 { 0.295 } else { 0.305 };
            objs.push(at("f", "person", 0.75, y, 0.1, 0.3));
        } else if i == 400 {
            ended.push("f");
        }
        if i == 500 {
            assert!(scene.set_snapshot("c", Some("cam1/2026-01-01/c.jpg".into())));
            assert!(scene.snapshot_improved("c"));
        }
        for m in frame(&mut scene, i, &objs, &ended) {
            if m.output == "events" {
                let names = m.event_names().iter().map(|s| s.to_string()).collect();
                events.push((i, m.property("trackId").unwrap().to_string(), names));
            } else {
                counts.push((i, m));
            }
        }
    }
    (events, counts)
}

#[test]
fn scripted_scenario_gives_the_exact_event_sequence() {
    let (events, _) = scripted();
    let got: Vec<(u64, &str, String)> = events
        .iter()
        .map(|(i, t, n)| (*i, t.as_str(), n.join("+")))
        .collect();
    let want = vec![
        (0, "p", "new"),
        (0, "c", "new"),
        (2, "c", "zoneEntered"),  // lot, after minFrames 3
        (38, "p", "zoneEntered"), // walk: raw inside from frame 36
        (58, "p", "zoneLeft"),
        (79, "p", "lineCrossed"), // on the line at 75; 0.15 box-heights (0.045) capped at 0.03 past it
        (91, "p", "end"),
        (100, "c", "stationary"),
        (100, "f", "new"),
        // f's flicker at bench's edge (runs of 2 frames) sends nothing.
        (200, "f", "stationary"),
        (201, "c", "loitering"), // > 20 s in lot since frame 0
        (202, "f", "zoneEntered"),
        // f's flicker out of bench (runs of 2) sends nothing either.
        (400, "f", "end"),
        // The snapshot improved at frame 500 waits for the stationary car's heartbeat.
        (801, "c", "heartbeat+snapshot"),
        (1000, "c", "active"),
        (1004, "c", "zoneLeft"),
        (1006, "c", "zoneEntered"),
        (1010, "c", "zoneLeft"),
        (1013, "c", "lineCrossed"), // the car's margin: 0.15 x 0.15
        (1016, "c", "end"),
    ];
    let want: Vec<(u64, &str, String)> = want
        .into_iter()
        .map(|(i, t, n)| (i, t, n.to_string()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn scripted_scenario_event_contents() {
    let mut scene = Scene::new(config());
    let mut msgs = Vec::new();
    for i in 0..=91u64 {
        let objs: Vec<_> = (i <= 90)
            .then(|| at("p", "person", 0.05 + 0.01 * i as f64, 0.7, 0.05, 0.3))
            .into_iter()
            .collect();
        let ended: &[&str] = if i == 91 { &["p"] } else { &[] };
        msgs.extend(
            frame(&mut scene, i, &objs, ended)
                .into_iter()
                .filter(|m| m.output == "events"),
        );
    }
    let props = |m: &SceneMessage, k: &str| {
        m.body.inferences[1].event.as_ref().unwrap().properties[k].clone()
    };
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[0].property("eventType"), Some("new"));
    assert_eq!(msgs[1].property("zone"), Some("walk"));
    assert_eq!(props(&msgs[1], "currentZones"), "walk");
    assert_eq!(props(&msgs[2], "currentZones"), "");
    assert_eq!(props(&msgs[2], "enteredZones"), "walk");
    assert_eq!(msgs[2].property("zone"), Some("walk"));
    assert_eq!(props(&msgs[3], "line"), "gate");
    assert_eq!(props(&msgs[3], "direction"), "in");
    assert_eq!(msgs[3].property("line"), Some("gate"));
    assert_eq!(msgs[4].property("eventType"), Some("end"));
    assert_eq!(props(&msgs[4], "firstSeenMs"), "0");
    assert_eq!(props(&msgs[4], "lastSeenMs"), "9000");
    assert_eq!(msgs[4].body.frame.pts_ms, 9100);
    // Every event inference points at the entity, whose id is the track id.
    for m in &msgs {
        let entity = &m.body.inferences[0];
        assert_eq!(entity.entity.as_ref().unwrap().id, "p");
        for ev in &m.body.inferences[1..] {
            assert_eq!(ev.related_inferences, vec![entity.inference_id.clone()]);
        }
    }
}

#[test]
fn scripted_scenario_counts_coalesced_to_five_seconds() {
    let (_, counts) = scripted_with(SceneConfig {
        counts_min_secs: 5.0,
        ..config()
    });
    let frames: Vec<u64> = counts.iter().map(|(i, _)| *i).collect();
    // Frames are 100 ms apart: changes at 2..79 go out at 0, 50 (5 s later) and 100; the
    // burst at 1000..1013 as one message.
    assert_eq!(frames, vec![0, 50, 100, 202, 400, 1000]);
}

#[test]
fn scripted_scenario_counts() {
    let (_, counts) = scripted();
    let frames: Vec<u64> = counts.iter().map(|(i, _)| *i).collect();
    // First frame, each membership or crossing change, and once a minute when idle.
    assert_eq!(
        frames,
        vec![0, 2, 38, 58, 79, 202, 400, 1000, 1004, 1006, 1010, 1013]
    );
    let p = |i: usize, inf: usize, k: &str| {
        counts[i].1.body.inferences[inf]
            .event
            .as_ref()
            .unwrap()
            .properties
            .get(k)
            .cloned()
    };
    // Inferences: zones in name order (bench, lot, walk), then lines (gate).
    assert_eq!(p(0, 1, "present.car"), Some("0".into())); // lot lists its filtered class
    assert_eq!(p(1, 1, "present.car"), Some("1".into()));
    assert_eq!(p(2, 2, "present.person"), Some("1".into()));
    assert_eq!(p(3, 2, "present"), Some("0".into()));
    assert_eq!(p(4, 3, "in.person"), Some("1".into()));
    assert_eq!(p(5, 0, "present.person"), Some("1".into()));
    assert_eq!(p(7, 1, "present.car"), Some("1".into())); // the periodic one, car still parked
    assert_eq!(p(11, 3, "in"), Some("2".into()));
    assert_eq!(p(11, 3, "in.car"), Some("1".into()));
}

#[test]
fn set_config_keeps_tracks_and_sends_no_spurious_events() {
    let mut scene = Scene::new(config());
    for i in 0..10 {
        frame(
            &mut scene,
            i,
            &[at("p", "person", 0.5, 0.7, 0.05, 0.3)],
            &[],
        );
    }
    let mut cfg = config();
    cfg.zones.remove("walk");
    cfg.lines.clear();
    scene.set_config(cfg.clone());
    let out = frame(
        &mut scene,
        10,
        &[at("p", "person", 0.5, 0.7, 0.05, 0.3)],
        &[],
    );
    // No event for the removed zone; counts go out at once, without it.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].output, "counts");
    let zones: Vec<_> = out[0]
        .body
        .inferences
        .iter()
        .map(|i| i.event.as_ref().unwrap().properties["zone"].clone())
        .collect();
    assert_eq!(zones, vec!["bench", "lot"]);
    // The track carries on: no second `new`, and its later messages say it is in no zone.
    let mut later = Vec::new();
    for i in 11..=700 {
        later.extend(frame(
            &mut scene,
            i,
            &[at("p", "person", 0.5, 0.7, 0.05, 0.3)],
            &[],
        ));
    }
    let names: Vec<_> = later
        .iter()
        .filter(|m| m.output == "events")
        .map(|m| m.event_names().join("+"))
        .collect();
    assert_eq!(names, vec!["stationary", "heartbeat"]);
    let hb = later
        .iter()
        .find(|m| m.property("events") == Some("heartbeat"))
        .unwrap();
    assert_eq!(
        hb.body.inferences[1].event.as_ref().unwrap().properties["currentZones"],
        ""
    );
    assert_eq!(
        hb.body.inferences[1].event.as_ref().unwrap().properties["enteredZones"],
        "walk"
    );
    // Knobs apply too: a 30 s heartbeat.
    cfg.heartbeat_secs = 30.0;
    scene.set_config(cfg);
    let hb: Vec<u64> = (701..1400)
        .filter(|&i| {
            frame(
                &mut scene,
                i,
                &[at("p", "person", 0.5, 0.7, 0.05, 0.3)],
                &[],
            )
            .iter()
            .any(|m| m.output == "events")
        })
        .collect();
    assert_eq!(hb, vec![1000, 1300]);
}

#[test]
fn reset_forgets_tracks_and_counters() {
    let mut scene = Scene::new(config());
    for i in 0..80 {
        frame(
            &mut scene,
            i,
            &[at("p", "person", 0.05 + 0.01 * i as f64, 0.7, 0.05, 0.3)],
            &[],
        );
    }
    assert_eq!(scene.tracks(), 1);
    scene.reset();
    assert_eq!(scene.tracks(), 0);
    let out = frame(
        &mut scene,
        0,
        &[at("p", "person", 0.9, 0.7, 0.05, 0.3)],
        &[],
    );
    assert_eq!(out[0].property("eventType"), Some("new"));
    let gate = &out[1].body.inferences[3].event.as_ref().unwrap().properties;
    assert_eq!(gate["in"], "0");
}

#[test]
fn tracks_dropped_without_notice_end_after_a_while() {
    let mut scene = Scene::new(SceneConfig::default());
    frame(&mut scene, 0, &[at("a", "person", 0.5, 0.5, 0.1, 0.2)], &[]);
    assert!(frame(&mut scene, 300, &[], &[]).is_empty());
    let out = frame(&mut scene, 301, &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].property("eventType"), Some("end"));
    assert_eq!(scene.tracks(), 0);
    // Unknown ids in `ended` are ignored; no zones or lines: no counts either.
    assert!(frame(&mut scene, 302, &[], &["nobody"]).is_empty());
}

#[test]
fn a_track_seen_and_ended_on_one_frame_gets_new_then_end() {
    let mut scene = Scene::new(SceneConfig::default());
    let out = frame(
        &mut scene,
        0,
        &[at("a", "person", 0.5, 0.5, 0.1, 0.2)],
        &["a"],
    );
    let types: Vec<_> = out
        .iter()
        .map(|m| m.property("eventType").unwrap())
        .collect();
    assert_eq!(types, vec!["new", "end"]);
}

/// 800 frames, every one with detections, a few tracks: event messages must be at most
/// 1/20 of what one-message-per-frame output sends. Counts messages are printed, not bound:
/// they follow the scene's activity (one per membership or line change).
#[test]
fn message_volume_is_at_most_a_twentieth_of_frames() {
    let mut scene = Scene::new(config());
    let (mut events, mut counts, mut with_detections) = (0usize, 0usize, 0usize);
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.004
    };
    for i in 0..800u64 {
        let mut objs = vec![at("car", "car", 0.15 + noise(), 0.8 + noise(), 0.2, 0.15)];
        // Walkers cross left to right, a new one every 200 frames.
        let k = i % 200;
        if k < 180 {
            let id = format!("walker-{}", i / 200);
            objs.push(at(
                &id,
                "person",
                0.05 + 0.005 * k as f64 + noise(),
                0.7 + noise(),
                0.05,
                0.3,
            ));
        }
        // Someone standing in `bench` for 50 s, shifting weight now and then.
        if (100..600).contains(&i) {
            let sway = if (i / 40) % 2 == 0 { 0.0 } else { 0.03 };
            objs.push(at(
                "sitter",
                "person",
                0.75 + sway + noise(),
                0.25 + noise(),
                0.1,
                0.3,
            ));
        }
        let mut ended = Vec::new();
        if k == 180 {
            ended.push(format!("walker-{}", i / 200));
        }
        if i == 600 {
            ended.push("sitter".to_string());
        }
        with_detections += 1;
        let ended: Vec<&str> = ended.iter().map(String::as_str).collect();
        for m in frame(&mut scene, i, &objs, &ended) {
            match m.output {
                "events" => events += 1,
                _ => counts += 1,
            }
        }
    }
    println!("frames with detections {with_detections}, event messages {events}, counts messages {counts}");
    assert!(
        events * 20 <= with_detections,
        "{events} events for {with_detections} frames"
    );
}

#[test]
fn same_frames_same_messages() {
    let a = scripted();
    let b = scripted();
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
}
