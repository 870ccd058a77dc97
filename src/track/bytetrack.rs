//! ByteTrack (Zhang et al., ECCV 2022): Kalman-predicted boxes, associated in stages.
//!
//! 1. confirmed tracks (matched or coasting) take the high-score detections (optimal IoU);
//! 2. confirmed tracks still unmatched that were matched last frame take the low-score
//!    detections (stricter IoU): an object half hidden scores low, and this keeps its track;
//! 3. confirmed tracks still unmatched take what is left of the high-score detections by IoU
//!    with their last *observed* box (OC-SORT's observation-centric recovery): a person hidden
//!    for a while reappears near where they were last seen, while the Kalman prediction has
//!    drifted away on a stale velocity; without this each occlusion starts a new id;
//! 4. unconfirmed tracks take what is left of the high-score detections; an unconfirmed track
//!    that misses a frame is dropped, so confirmation needs `min_hits` consecutive high hits;
//! 5. high-score detections still unmatched start new tracks if they reach `new_track_score`.
//!
//! Confirmed tracks survive `max_missed` frames without a match. All matching is class-aware.

use super::assign::{self, Ltwh, Matches};
use super::ids::IdGen;
use super::state::KfTrack;
use super::{usable, TrackUpdate, Tracker, TrackerConfig};
use crate::engine::Detection;

pub struct ByteTrack {
    cfg: TrackerConfig,
    ids: IdGen,
    tracks: Vec<KfTrack>,
}

pub(crate) fn det_ltwh(d: &Detection) -> Ltwh {
    [d.bbox.l, d.bbox.t, d.bbox.w, d.bbox.h]
}

impl ByteTrack {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self::with_ids(cfg, IdGen::new())
    }

    pub fn with_ids(cfg: TrackerConfig, ids: IdGen) -> Self {
        ByteTrack {
            cfg,
            ids,
            tracks: Vec::new(),
        }
    }

    /// One association stage between the tracks in `pool` and the detections in `cand`
    /// (indices into `self.tracks` and `dets`); results are mapped back to those indices.
    fn stage(
        &self,
        pool: &[usize],
        cand: &[usize],
        dets: &[Detection],
        predicted: &[Ltwh],
        min_iou: f32,
    ) -> Matches {
        let tb: Vec<Ltwh> = pool.iter().map(|&t| predicted[t]).collect();
        let db: Vec<Ltwh> = cand.iter().map(|&d| det_ltwh(&dets[d])).collect();
        let same_class =
            |t: usize, d: usize| self.tracks[pool[t]].class_id == dets[cand[d]].class_id;
        let m = assign::optimal(&tb, &db, same_class, min_iou);
        Matches {
            pairs: m.pairs.iter().map(|&(t, d)| (pool[t], cand[d])).collect(),
            unmatched_tracks: m.unmatched_tracks.iter().map(|&t| pool[t]).collect(),
            unmatched_dets: m.unmatched_dets.iter().map(|&d| cand[d]).collect(),
        }
    }

    fn apply(&mut self, m: &Matches, dets: &[Detection], matched: &mut [bool]) {
        for &(t, d) in &m.pairs {
            self.tracks[t].matched(&dets[d]);
            matched[t] = true;
        }
    }
}

impl Tracker for ByteTrack {
    fn update(&mut self, dets: &[Detection]) -> TrackUpdate {
        let cfg = self.cfg.clone();
        for t in &mut self.tracks {
            t.predict();
        }
        let predicted: Vec<Ltwh> = self.tracks.iter().map(|t| t.ltwh()).collect();
        let (mut high, mut low) = (Vec::new(), Vec::new());
        for (i, d) in dets.iter().enumerate().filter(|(_, d)| usable(d)) {
            if d.confidence >= cfg.high_score {
                high.push(i);
            } else if d.confidence >= cfg.low_score {
                low.push(i);
            }
        }
        let mut matched = vec![false; self.tracks.len()];

        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].confirmed)
            .collect();
        let m1 = self.stage(&confirmed, &high, dets, &predicted, cfg.match_iou);
        self.apply(&m1, dets, &mut matched);

        // `missed` is not yet bumped for this frame: 0 means matched on the previous frame.
        let recent: Vec<usize> = m1
            .unmatched_tracks
            .iter()
            .copied()
            .filter(|&t| self.tracks[t].missed == 0)
            .collect();
        let m2 = self.stage(&recent, &low, dets, &predicted, cfg.low_match_iou);
        self.apply(&m2, dets, &mut matched);

        let lost: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| self.tracks[t].confirmed && !matched[t])
            .collect();
        let observed: Vec<Ltwh> = self.tracks.iter().map(|t| t.last_obs).collect();
        let mr = self.stage(&lost, &m1.unmatched_dets, dets, &observed, cfg.match_iou);
        for &(t, d) in &mr.pairs {
            self.tracks[t].recovered(&dets[d]);
            matched[t] = true;
        }

        let unconfirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| !self.tracks[t].confirmed)
            .collect();
        let m3 = self.stage(
            &unconfirmed,
            &mr.unmatched_dets,
            dets,
            &predicted,
            cfg.unconfirmed_match_iou,
        );
        self.apply(&m3, dets, &mut matched);
        for &(t, _) in &m3.pairs {
            let tr = &mut self.tracks[t];
            tr.confirmed = tr.hits >= cfg.min_hits;
        }

        let mut ended = Vec::new();
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (mut t, was_matched) in std::mem::take(&mut self.tracks).into_iter().zip(matched) {
            if !was_matched {
                t.unmatched();
                if !t.confirmed {
                    continue;
                }
                if t.missed > cfg.max_missed {
                    ended.push(t.track());
                    continue;
                }
            }
            kept.push(t);
        }
        self.tracks = kept;

        for &d in &m3.unmatched_dets {
            if dets[d].confidence >= cfg.new_track_score {
                let t = KfTrack::new(self.ids.next_id(), &dets[d], cfg.min_hits);
                self.tracks.push(t);
            }
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
        "bytetrack"
    }
}

#[cfg(test)]
#[path = "bytetrack_tests.rs"]
mod tests;
