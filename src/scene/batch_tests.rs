//! Unit tests for `batch.rs`.

use super::*;
use crate::engine::BBox;
use crate::scene::counts::CountsSnapshot;
use crate::scene::events::{EventType, Reason, TrackEvent};

fn event(track: u32, kind: EventType, reasons: Vec<Reason>, label: &str, pts: u64) -> SceneMessage {
    SceneMessage::from_event(&TrackEvent {
        event_type: kind,
        reasons,
        track_id: format!("1700000000-{track}"),
        label: label.into(),
        pts_ms: pts,
        first_seen_ms: pts,
        last_seen_ms: pts,
        bbox: BBox {
            l: 0.1,
            t: 0.1,
            w: 0.2,
            h: 0.4,
        },
        score: 0.9,
        top_score: 0.9,
        current_zones: Vec::new(),
        entered_zones: Vec::new(),
        stationary: false,
        snapshot: None,
        seq: 0,
    })
}

fn new(track: u32, pts: u64) -> SceneMessage {
    event(track, EventType::New, vec![Reason::New], "person", pts)
}

fn end(track: u32, pts: u64) -> SceneMessage {
    event(track, EventType::End, vec![Reason::End], "person", pts)
}

fn counts(pts: u64) -> SceneMessage {
    SceneMessage::from_counts(&CountsSnapshot {
        zones: Default::default(),
        lines: Default::default(),
        pts_ms: pts,
    })
}

fn tracks(m: &SceneMessage) -> Vec<String> {
    m.body
        .inferences
        .iter()
        .filter_map(|i| i.entity.as_ref())
        .map(|e| e.id.clone())
        .collect()
}

#[test]
fn window_zero_sends_every_event_at_once() {
    let mut b = EventBatch::new(0);
    let t = Instant::now();
    let out = b.push(vec![new(1, 0), new(2, 0)], 0, t);
    assert_eq!(out.len(), 2);
    assert_eq!(b.pending(), 0);
    assert_eq!(out[0], new(1, 0), "unbatched messages are untouched");
}

#[test]
fn same_kind_within_the_window_shares_one_message() {
    let mut b = EventBatch::new(1000);
    let t = Instant::now();
    assert!(b.push(vec![new(1, 0)], 0, t).is_empty());
    assert!(b.push(vec![new(2, 400)], 400, t).is_empty());
    assert!(b.push(vec![new(3, 999)], 999, t).is_empty());
    assert_eq!(b.pending(), 3);
    // The window closes on the first frame at or past opened + window.
    let out = b.push(Vec::new(), 1000, t);
    assert_eq!(out.len(), 1);
    let m = &out[0];
    assert_eq!(tracks(m), ["1700000000-1", "1700000000-2", "1700000000-3"]);
    assert_eq!(
        m.property("trackId"),
        Some("1700000000-1,1700000000-2,1700000000-3")
    );
    assert_eq!(m.property("eventType"), Some("new"));
    assert_eq!(m.property("label"), Some("person"));
    assert_eq!(m.event_names(), ["new", "new", "new"]);
    assert_eq!(m.body.frame.pts_ms, 999, "frame time is the newest event's");
    assert_eq!(b.pending(), 0);
}

#[test]
fn routing_properties_never_mix() {
    let mut b = EventBatch::new(1000);
    let t = Instant::now();
    let car = event(3, EventType::New, vec![Reason::New], "car", 0);
    let zone = event(
        4,
        EventType::Update,
        vec![Reason::ZoneEntered("door".into())],
        "person",
        0,
    );
    b.push(vec![new(1, 0), car, end(2, 0), zone], 0, t);
    let out = b.flush();
    assert_eq!(
        out.len(),
        4,
        "new/person, new/car, end/person, update/zone: four routes"
    );
    for m in &out {
        assert_eq!(m.body.inferences.len(), 2, "one entity and its event each");
    }
    assert_eq!(out[3].property("zone"), Some("door"));
}

#[test]
fn order_is_kept_across_groups() {
    // Track 1's `end` opens a group after its `new`; a later, earlier-due flush never lets
    // the end overtake the new.
    let mut b = EventBatch::new(1000);
    let t = Instant::now();
    b.push(vec![new(1, 0)], 0, t);
    b.push(vec![end(1, 500)], 500, t);
    let out = b.push(vec![new(2, 1000)], 1000, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].property("eventType"), Some("new"));
    let out = b.push(Vec::new(), 1500, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].property("eventType"), Some("end"));
    assert_eq!(b.push(Vec::new(), 2000, t).len(), 1);
    // Two groups due on the same frame go out in the order they opened.
    b.push(vec![end(2, 2000)], 2000, t);
    b.push(vec![new(3, 2100)], 2100, t);
    let out = b.push(Vec::new(), 3100, t);
    let kinds: Vec<_> = out.iter().map(|m| m.property("eventType")).collect();
    assert_eq!(kinds, [Some("end"), Some("new")]);
}

#[test]
fn a_full_batch_goes_out_with_everything_opened_before_it() {
    let mut b = EventBatch::new(60_000);
    let t = Instant::now();
    b.push(vec![end(100, 0)], 0, t);
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.extend(b.push(vec![new(i, i as u64)], i as u64, t));
    }
    sent.extend(b.flush());
    // What IoT Hub meters: body and properties, with a 64-character source and model name.
    let sizes: Vec<usize> = sent
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.stamp(&"s".repeat(64), "2026-01-01T10:02:13.000Z");
            let props: usize = m.properties.iter().map(|(k, v)| k.len() + v.len()).sum();
            m.to_json().unwrap().len() + props + 2 * (6 + 64)
        })
        .collect();
    assert!(
        sizes.iter().all(|&n| n <= 4096),
        "each message within one metering chunk: {sizes:?}"
    );
    assert!(sent.len() >= 3, "40 events do not fit in one chunk");
    assert_eq!(
        sent[0].property("eventType"),
        Some("end"),
        "opened first, out first"
    );
    let ids: Vec<String> = sent[1..].iter().flat_map(tracks).collect();
    let want: Vec<String> = (0..40).map(|i| format!("1700000000-{i}")).collect();
    assert_eq!(ids, want, "nothing lost, nothing reordered");
}

#[test]
fn a_stalled_source_is_flushed_by_the_wall_clock() {
    let mut b = EventBatch::new(1000);
    let t = Instant::now();
    b.push(vec![new(1, 0)], 0, t);
    assert!(b.idle(t + Duration::from_millis(999)).is_empty());
    // Frames keep coming (fast, within the stream window): no wall-clock flush.
    b.push(Vec::new(), 100, t + Duration::from_millis(999));
    assert!(b.idle(t + Duration::from_millis(1500)).is_empty());
    b.push(vec![end(2, 200)], 200, t + Duration::from_millis(1000));
    let out = b.idle(t + Duration::from_millis(2000));
    assert_eq!(
        out.len(),
        2,
        "a whole window without a frame: everything goes"
    );
    assert_eq!(b.pending(), 0);
}

#[test]
fn counts_pass_straight_through() {
    let mut b = EventBatch::new(1000);
    let t = Instant::now();
    let out = b.push(vec![new(1, 0), counts(0)], 0, t);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].output, crate::scene::OUTPUT_COUNTS);
    assert_eq!(b.pending(), 1);
}

fn zone(track: u32, entered: bool, pts: u64) -> SceneMessage {
    let r = if entered {
        Reason::ZoneEntered("door".into())
    } else {
        Reason::ZoneLeft("door".into())
    };
    event(track, EventType::Update, vec![r], "person", pts)
}

/// The reviewer's cases: an event never joins a batch that goes out before an earlier event
/// of its own track.
#[test]
fn a_track_keeps_its_order_when_batches_interleave() {
    let mut b = EventBatch::new(2000);
    let t = Instant::now();
    let mut sent = Vec::new();
    // A enters (batch 1); B appears (batch 2); B enters: batch 1 has the same kind, but B's
    // `new` sits in batch 2, which goes out later, so B's entry starts batch 3.
    sent.extend(b.push(vec![zone(1, true, 0)], 0, t));
    sent.extend(b.push(vec![new(2, 300)], 300, t));
    sent.extend(b.push(vec![zone(2, true, 1200)], 1200, t));
    // One track at a zone's edge: entered, left, entered.
    sent.extend(b.push(vec![zone(3, true, 1300)], 1300, t));
    sent.extend(b.push(vec![zone(3, false, 1400)], 1400, t));
    sent.extend(b.push(vec![zone(3, true, 1500)], 1500, t));
    sent.extend(b.flush());
    let order = |track: &str| -> Vec<String> {
        sent.iter()
            .flat_map(|m| {
                let ids = tracks(m);
                let names: Vec<String> = m.event_names().iter().map(|s| s.to_string()).collect();
                ids.into_iter()
                    .zip(names)
                    .filter(|(id, _)| id.ends_with(track))
                    .map(|(_, n)| n)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(order("-2"), ["new", "zoneEntered"]);
    assert_eq!(order("-3"), ["zoneEntered", "zoneLeft", "zoneEntered"]);
    let total: usize = sent.iter().map(|m| m.event_names().len()).sum();
    assert_eq!(total, 6, "nothing lost or doubled");
}

#[test]
fn a_source_whose_clock_restarts_flushes_at_once() {
    let mut b = EventBatch::new(2000);
    let t = Instant::now();
    b.push(vec![new(1, 3_600_000)], 3_600_000, t);
    // Rebuilt: stream time starts again near zero.
    let out = b.push(vec![new(2, 40)], 40, t);
    assert_eq!(out.len(), 1);
    assert_eq!(tracks(&out[0]), ["1700000000-1"]);
    assert_eq!(
        b.pending(),
        1,
        "the new clock's event waits for its own window"
    );
}
