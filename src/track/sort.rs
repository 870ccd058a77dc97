//! SORT (Bewley et al., 2016), our own small implementation: Kalman-predicted boxes, one
//! Hungarian assignment on IoU against every detection at or above `low_score`, a track is
//! confirmed after `min_hits` consecutive matches and dropped after `max_missed` misses.
//!
//! The paper's settings are `min_hits 3`, `max_missed 1`, IoU 0.3; the filter is the shared
//! ByteTrack one (noise proportional to box height) so that SORT, like the others, is
//! unit-agnostic. `similari`'s SORT was measured against this one (docs/tracking.md).

use super::assign::{self, Ltwh};
use super::bytetrack::det_ltwh;
use super::ids::IdGen;
use super::state::KfTrack;
use super::{usable, TrackUpdate, Tracker, TrackerConfig};
use crate::engine::Detection;

pub struct Sort {
    cfg: TrackerConfig,
    ids: IdGen,
    tracks: Vec<KfTrack>,
}

impl Sort {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self::with_ids(cfg, IdGen::new())
    }

    pub fn with_ids(cfg: TrackerConfig, ids: IdGen) -> Self {
        Sort {
            cfg,
            ids,
            tracks: Vec::new(),
        }
    }
}

impl Tracker for Sort {
    fn update(&mut self, dets: &[Detection]) -> TrackUpdate {
        for t in &mut self.tracks {
            t.predict();
        }
        let predicted: Vec<Ltwh> = self.tracks.iter().map(|t| t.ltwh()).collect();
        let cand: Vec<usize> = (0..dets.len())
            .filter(|&i| usable(&dets[i]) && dets[i].confidence >= self.cfg.low_score)
            .collect();
        let db: Vec<Ltwh> = cand.iter().map(|&d| det_ltwh(&dets[d])).collect();
        let tracks = &self.tracks;
        let same_class = |t: usize, d: usize| tracks[t].class_id == dets[cand[d]].class_id;
        let m = assign::optimal(&predicted, &db, same_class, self.cfg.match_iou);

        let mut matched = vec![false; self.tracks.len()];
        for &(t, d) in &m.pairs {
            let tr = &mut self.tracks[t];
            tr.matched(&dets[cand[d]]);
            tr.confirmed |= tr.streak >= self.cfg.min_hits;
            matched[t] = true;
        }
        let mut ended = Vec::new();
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (mut t, was_matched) in std::mem::take(&mut self.tracks).into_iter().zip(matched) {
            if !was_matched {
                t.unmatched();
                // Unconfirmed tracks get the same grace as confirmed ones, as in SORT.
                if t.missed > self.cfg.max_missed {
                    if t.confirmed {
                        ended.push(t.track());
                    }
                    continue;
                }
            }
            kept.push(t);
        }
        self.tracks = kept;
        for &d in &m.unmatched_dets {
            let t = KfTrack::new(self.ids.next_id(), &dets[cand[d]], self.cfg.min_hits);
            self.tracks.push(t);
        }
        TrackUpdate {
            tracks: self.tracks.iter().map(KfTrack::track).collect(),
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
        "sort"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{det, person, walk};
    use super::*;

    fn sort(min_hits: u32, max_missed: u32) -> Sort {
        let cfg = TrackerConfig {
            min_hits,
            max_missed,
            ..Default::default()
        };
        Sort::with_ids(cfg, IdGen::starting_at(1))
    }

    #[test]
    fn confirms_after_consecutive_hits_and_keeps_id() {
        let mut s = sort(3, 1);
        let ups: Vec<_> = (0..5).map(|f| s.update(&[person(walk(f), 0.9)])).collect();
        let confirmed: Vec<bool> = ups.iter().map(|u| u.tracks[0].confirmed).collect();
        assert_eq!(confirmed, [false, false, true, true, true]);
        assert!(ups
            .iter()
            .all(|u| u.tracks.len() == 1 && u.tracks[0].id == "1-1"));
    }

    #[test]
    fn drops_after_max_missed_and_reports_end() {
        let mut s = sort(1, 1);
        s.update(&[person(walk(0), 0.9)]);
        let u = s.update(&[]);
        assert_eq!((u.tracks.len(), u.tracks[0].missed), (1, 1));
        let u = s.update(&[]);
        assert!(u.tracks.is_empty());
        assert_eq!(u.ended.len(), 1);
    }

    #[test]
    fn class_aware() {
        let mut s = sort(1, 1);
        s.update(&[person(walk(0), 0.9)]);
        let u = s.update(&[det("car", 2, walk(1), 0.9)]);
        // The person coasts, the car is a new track.
        assert_eq!(u.tracks.len(), 2);
        assert_eq!(u.tracks[0].label, "person");
        assert_eq!(u.tracks[0].missed, 1);
        assert_eq!(u.tracks[1].label, "car");
    }
}
