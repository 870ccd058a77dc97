//! The naive baseline: greedy IoU between each track's last box and this frame's detections.
//! No motion model and one stage; the same lifecycle knobs as the others (confirmed after
//! `min_hits` hits, kept `max_missed` frames). It shows what the Kalman filter and the
//! optimal, two-stage association buy.

use super::assign::{self, Ltwh};
use super::bytetrack::det_ltwh;
use super::ids::IdGen;
use super::{usable, Track, TrackUpdate, Tracker, TrackerConfig};
use crate::engine::{BBox, Detection};

#[derive(Debug, Clone)]
struct Naive {
    track: Track,
    last: Ltwh,
}

pub struct IouTracker {
    cfg: TrackerConfig,
    ids: IdGen,
    tracks: Vec<Naive>,
}

impl IouTracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self::with_ids(cfg, IdGen::new())
    }

    pub fn with_ids(cfg: TrackerConfig, ids: IdGen) -> Self {
        IouTracker {
            cfg,
            ids,
            tracks: Vec::new(),
        }
    }
}

fn bbox(b: Ltwh) -> BBox {
    BBox {
        l: b[0],
        t: b[1],
        w: b[2],
        h: b[3],
    }
}

impl Tracker for IouTracker {
    fn update(&mut self, dets: &[Detection]) -> TrackUpdate {
        let cand: Vec<usize> = (0..dets.len())
            .filter(|&i| usable(&dets[i]) && dets[i].confidence >= self.cfg.low_score)
            .collect();
        let tb: Vec<Ltwh> = self.tracks.iter().map(|t| t.last).collect();
        let db: Vec<Ltwh> = cand.iter().map(|&d| det_ltwh(&dets[d])).collect();
        let tracks = &self.tracks;
        let same_class = |t: usize, d: usize| tracks[t].track.class_id == dets[cand[d]].class_id;
        let m = assign::greedy(&tb, &db, same_class, self.cfg.match_iou);

        let mut matched = vec![false; self.tracks.len()];
        for &(t, d) in &m.pairs {
            let (n, det) = (&mut self.tracks[t], &dets[cand[d]]);
            n.last = db[d];
            n.track.bbox = det.bbox;
            n.track.score = det.confidence;
            n.track.hits = n.track.hits.saturating_add(1);
            n.track.missed = 0;
            n.track.confirmed |= n.track.hits >= self.cfg.min_hits;
            matched[t] = true;
        }
        let mut ended = Vec::new();
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (mut n, was_matched) in std::mem::take(&mut self.tracks).into_iter().zip(matched) {
            if !was_matched {
                n.track.missed = n.track.missed.saturating_add(1);
                let limit = if n.track.confirmed {
                    self.cfg.max_missed
                } else {
                    0
                };
                if n.track.missed > limit {
                    if n.track.confirmed {
                        ended.push(n.track);
                    }
                    continue;
                }
            }
            kept.push(n);
        }
        self.tracks = kept;
        for &d in &m.unmatched_dets {
            let det = &dets[cand[d]];
            if det.confidence < self.cfg.new_track_score {
                continue;
            }
            let track = Track {
                id: self.ids.next_id(),
                label: det.label.clone(),
                class_id: det.class_id,
                bbox: bbox(db[d]),
                score: det.confidence,
                confirmed: self.cfg.min_hits <= 1,
                hits: 1,
                missed: 0,
            };
            self.tracks.push(Naive { track, last: db[d] });
        }
        TrackUpdate {
            tracks: self.tracks.iter().map(|n| n.track.clone()).collect(),
            ended,
        }
    }

    fn set_max_missed(&mut self, frames: u32) {
        self.cfg.max_missed = frames;
    }

    fn reset(&mut self) {
        self.tracks.clear();
        self.ids.reset();
    }

    fn name(&self) -> &'static str {
        "iou"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{person, walk};
    use super::*;

    #[test]
    fn follows_a_slow_walker_and_ends_it() {
        let cfg = TrackerConfig {
            min_hits: 2,
            max_missed: 2,
            ..Default::default()
        };
        let mut t = IouTracker::with_ids(cfg, IdGen::starting_at(7));
        let u = t.update(&[person(walk(0), 0.9)]);
        assert!(!u.tracks[0].confirmed);
        let u = t.update(&[person(walk(1), 0.9)]);
        assert!(u.tracks[0].confirmed);
        assert_eq!(u.tracks[0].id, "7-1");
        assert_eq!(u.tracks[0].bbox.l, walk(1)[0]);
        for missed in 1..=2 {
            let u = t.update(&[]);
            assert_eq!(u.tracks[0].missed, missed);
        }
        let u = t.update(&[]);
        assert!(u.tracks.is_empty());
        assert_eq!(u.ended[0].id, "7-1");
    }
}
