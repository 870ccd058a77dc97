use super::super::testutil::{det, person, walk};
use super::super::Track;
use super::*;

fn bt(min_hits: u32, max_missed: u32) -> ByteTrack {
    let cfg = TrackerConfig {
        min_hits,
        max_missed,
        ..Default::default()
    };
    ByteTrack::with_ids(cfg, IdGen::starting_at(1000))
}

/// A box running right at `speed` px per frame.
fn run(frame: u32, speed: f32) -> [f32; 4] {
    [50.0 + speed * frame as f32, 100.0, 40.0, 80.0]
}

#[test]
fn confirmed_after_n_consecutive_high_hits() {
    let mut t = bt(3, 5);
    let flags: Vec<bool> = (0..4)
        .map(|f| t.update(&[person(walk(f), 0.9)]).tracks[0].confirmed)
        .collect();
    assert_eq!(flags, [false, false, true, true]);
    let u = t.update(&[person(walk(4), 0.9)]);
    assert_eq!((u.tracks.len(), u.tracks[0].hits), (1, 5));
    assert_eq!(u.tracks[0].id, "1000-1");
}

#[test]
fn unconfirmed_track_dies_on_a_miss_silently() {
    let mut t = bt(3, 5);
    t.update(&[person(walk(0), 0.9)]);
    let u = t.update(&[]);
    assert!(u.tracks.is_empty());
    assert!(u.ended.is_empty(), "never confirmed, so never ended");
}

#[test]
fn unconfirmed_tracks_need_high_scores() {
    let mut t = bt(2, 5);
    // Too low to start a track at all.
    assert!(t.update(&[person(walk(0), 0.55)]).tracks.is_empty());
    assert!(t.update(&[person(walk(1), 0.3)]).tracks.is_empty());
    // Started by a high score, but a low-score follow-up does not confirm it.
    t.update(&[person(walk(2), 0.9)]);
    let u = t.update(&[person(walk(3), 0.3)]);
    assert!(u.tracks.is_empty(), "{u:?}");
}

#[test]
fn dropped_after_m_missed_frames() {
    let mut t = bt(1, 3);
    let first = t.update(&[person(walk(0), 0.9)]);
    assert!(first.tracks[0].confirmed);
    for missed in 1..=3 {
        let u = t.update(&[]);
        assert_eq!(u.tracks.len(), 1);
        assert_eq!(u.tracks[0].missed, missed);
        assert!(u.ended.is_empty());
    }
    let u = t.update(&[]);
    assert!(u.tracks.is_empty());
    assert_eq!(u.ended.len(), 1);
    assert_eq!(u.ended[0].id, first.tracks[0].id);
    assert_eq!(u.ended[0].missed, 4);
}

#[test]
fn low_score_detections_keep_a_track_through_occlusion() {
    let mut t = bt(2, 0);
    for f in 0..5 {
        t.update(&[person(walk(f), 0.9)]);
    }
    // Half hidden: the detector still sees it, at 0.2-0.4. With max_missed 0 only the
    // second stage can keep the track alive.
    for f in 5..12 {
        let score = 0.2 + 0.02 * (f - 5) as f32;
        let u = t.update(&[person(walk(f), score)]);
        assert_eq!(u.tracks.len(), 1, "frame {f}: {u:?}");
        assert_eq!((u.tracks[0].id.as_str(), u.tracks[0].missed), ("1000-1", 0));
        assert_eq!(u.tracks[0].score, score);
    }
    let u = t.update(&[person(walk(12), 0.9)]);
    assert_eq!(u.tracks[0].id, "1000-1");
    assert_eq!(u.tracks[0].hits, 13);
}

#[test]
fn low_score_detections_do_not_revive_a_lost_track() {
    let mut t = bt(1, 5);
    for f in 0..3 {
        t.update(&[person(walk(f), 0.9)]);
    }
    t.update(&[]);
    let u = t.update(&[person(walk(4), 0.3)]);
    assert_eq!(
        u.tracks[0].missed, 2,
        "a coasting track takes high scores only"
    );
    let u = t.update(&[person(walk(5), 0.8)]);
    assert_eq!((u.tracks.len(), u.tracks[0].missed), (1, 0));
}

#[test]
fn high_scores_are_matched_before_low_ones() {
    let mut t = bt(1, 5);
    for f in 0..3 {
        t.update(&[person(walk(f), 0.9)]);
    }
    // A low-score box exactly where the track goes and a high-score one a bit off: the
    // first stage gives the track the high-score one; the low one is left and starts nothing.
    let exact = walk(3);
    let off = [exact[0] + 8.0, exact[1], exact[2], exact[3]];
    let u = t.update(&[person(exact, 0.3), person(off, 0.95)]);
    assert_eq!(u.tracks.len(), 1);
    assert_eq!(u.tracks[0].score, 0.95);
}

#[test]
fn kalman_prediction_bridges_a_gap_no_box_overlap_could() {
    let mut t = bt(2, 10);
    for f in 0..12 {
        t.update(&[person(run(f, 6.0), 0.9)]);
    }
    for _ in 12..18 {
        t.update(&[]);
    }
    // 36 px from the last box seen: IoU with it is 0.05, with the prediction ~1.
    let u = t.update(&[person(run(18, 6.0), 0.9)]);
    assert!(assign::iou(&run(11, 6.0), &run(18, 6.0)) < 0.1);
    assert_eq!(u.tracks.len(), 1, "{u:?}");
    assert_eq!((u.tracks[0].id.as_str(), u.tracks[0].missed), ("1000-1", 0));
}

#[test]
fn a_track_keeps_its_class() {
    let mut t = bt(1, 5);
    t.update(&[person(walk(0), 0.9)]);
    let u = t.update(&[det("car", 2, walk(1), 0.9)]);
    assert_eq!(u.tracks.len(), 2);
    let p = u.tracks.iter().find(|x| x.id == "1000-1").unwrap();
    assert_eq!((p.label.as_str(), p.class_id, p.missed), ("person", 0, 1));
    let c = u.tracks.iter().find(|x| x.id == "1000-2").unwrap();
    assert_eq!((c.label.as_str(), c.class_id), ("car", 2));
}

#[test]
fn two_crossing_people_keep_their_ids() {
    let mut t = bt(2, 10);
    let mut ids = (String::new(), String::new());
    for f in 0..40u32 {
        let a = [100.0 + 5.0 * f as f32, 100.0, 40.0, 80.0];
        let b = [300.0 - 5.0 * f as f32, 104.0, 40.0, 80.0];
        // While they overlap the detector sees only the one in front.
        let dets = if (18..23).contains(&f) {
            vec![person(a, 0.9)]
        } else {
            vec![person(a, 0.9), person(b, 0.8)]
        };
        let u = t.update(&dets);
        let left = |x: &Track| x.missed == 0 && (x.bbox.l - a[0]).abs() < 6.0;
        let right = |x: &Track| x.missed == 0 && (x.bbox.l - b[0]).abs() < 6.0;
        if f == 5 {
            ids.0 = u.tracks.iter().find(|x| left(x)).unwrap().id.clone();
            ids.1 = u.tracks.iter().find(|x| right(x)).unwrap().id.clone();
        }
        if f > 30 {
            assert_eq!(u.tracks.iter().find(|x| left(x)).unwrap().id, ids.0, "f{f}");
            assert_eq!(
                u.tracks.iter().find(|x| right(x)).unwrap().id,
                ids.1,
                "f{f}"
            );
        }
    }
}

#[test]
fn reset_forgets_tracks_and_never_reuses_an_id() {
    let mut t = bt(1, 5);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        for f in 0..3 {
            let u = t.update(&[person(walk(f), 0.9), person(run(f, 1.0), 0.9)]);
            for tr in u.tracks {
                seen.insert(tr.id);
            }
        }
        t.reset();
        assert!(t.update(&[]).tracks.is_empty());
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[test]
fn unusable_detections_are_ignored() {
    let mut t = bt(1, 5);
    let u = t.update(&[
        person([f32::NAN, 0.0, 10.0, 10.0], 0.9),
        person([0.0, 0.0, 0.0, 10.0], 0.9),
        person([0.0, 0.0, 10.0, 10.0], f32::NAN),
        person([f32::INFINITY, 0.0, 10.0, 10.0], 0.9),
    ]);
    assert!(u.tracks.is_empty());
}

#[test]
fn unit_agnostic() {
    // The same scene in pixels and in 0..1 units gives the same ids and proportional boxes.
    let mut px = bt(2, 5);
    let mut nz = bt(2, 5);
    let s = 1.0 / 640.0;
    for f in 0..20 {
        let b = walk(f);
        let up = px.update(&[person(b, 0.9)]);
        let un = nz.update(&[person([b[0] * s, b[1] * s, b[2] * s, b[3] * s], 0.9)]);
        assert_eq!(up.tracks.len(), un.tracks.len());
        for (a, b) in up.tracks.iter().zip(&un.tracks) {
            assert_eq!((a.confirmed, a.hits), (b.confirmed, b.hits));
            assert!((a.bbox.l * s - b.bbox.l).abs() < 1e-4);
        }
    }
}
