//! Unit tests for `scene_stage.rs`.

use super::*;
use crate::track::TrackerConfig;
use std::time::Duration;

fn det(l: f32, score: f32) -> Detection {
    Detection {
        label: "person".into(),
        class_id: 1,
        confidence: score,
        bbox: BBox {
            l,
            t: 0.4,
            w: 0.1,
            h: 0.3,
        },
    }
}

fn stage() -> SceneStage {
    let tracker = crate::track::by_name("bytetrack", TrackerConfig::default()).unwrap();
    SceneStage::new(tracker, Arc::new(SceneConfig::default()), None)
}

fn frame() -> Frame {
    Frame::blank((8, 8), 16, 8)
}

#[test]
fn ids_are_stable_and_low_scores_hidden() {
    let mut s = stage();
    let f = frame();
    let mut ids = Vec::new();
    let mut msgs = Vec::new();
    for i in 0..10 {
        let x = 0.1 + i as f32 * 0.01;
        // The low-score detection elsewhere never shows (nor starts a track).
        let r = s.frame(&f, i * 100, &[det(x, 0.9), det(0.7, 0.2)], 0.5, "cam");
        assert_eq!(r.ids.len(), 1, "sub-threshold detections are dropped");
        ids.push(r.ids[0].clone());
        msgs.extend(r.messages);
    }
    assert!(ids[0].is_none(), "not confirmed on the first hit");
    let id = ids[9].clone().unwrap();
    assert!(ids[2..].iter().all(|i| i.as_deref() == Some(id.as_str())));
    msgs.extend(s.finish());
    let types: Vec<_> = msgs
        .iter()
        .filter_map(|m| m.property("eventType"))
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "new").count(), 1);
    assert_eq!(
        types.iter().filter(|t| **t == "end").count(),
        1,
        "{types:?}"
    );
}

#[test]
fn keep_alive_is_seconds_at_the_stream_rate() {
    assert_eq!(keep_frames(5000.0, Some(100.0)), 50);
    assert_eq!(keep_frames(5000.0, Some(1000.0 / 30.0)), 150);
    assert_eq!(keep_frames(5000.0, None), 150);
    assert_eq!(keep_frames(0.0, Some(100.0)), 1);
    let mut s = stage();
    let f = frame();
    for i in 0..20 {
        s.frame(&f, i * 100, &[det(0.1, 0.9)], 0.5, "cam");
    }
    assert_eq!(s.max_missed, 50, "10 fps: 5 s is 50 frames");
}

#[test]
fn picture_has_the_original_aspect() {
    let p = frame_picture(&frame()).unwrap();
    assert_eq!(p.dimensions(), (16, 8));
}

#[test]
fn outgoing_events_wait_for_their_batch_and_finish_flushes_them() {
    let mut s = stage();
    let f = frame();
    let t = Instant::now();
    let (mut seen, mut sent) = (0, Vec::new());
    // Two people confirmed on the same frame, 100 ms per frame; the default window is 2 s.
    for i in 0..10u64 {
        let r = s.frame(&f, i * 100, &[det(0.1, 0.9), det(0.6, 0.9)], 0.5, "cam");
        seen += r.messages.len();
        sent.extend(s.outgoing(r.messages, t));
    }
    assert_eq!(
        seen, 2,
        "two `new` events, one per track, for the live view"
    );
    assert!(sent.is_empty(), "held within the window: {sent:?}");
    assert_eq!(s.idle(t).len(), 0, "the wall clock has not moved");
    assert_eq!(
        s.idle(t + Duration::from_secs(3)).len(),
        1,
        "one message, both tracks"
    );
    let ends = s.finish();
    assert_eq!(ends.len(), 1, "both ends in one message: {ends:?}");
    assert_eq!(ends[0].event_names(), ["end", "end"]);
}
