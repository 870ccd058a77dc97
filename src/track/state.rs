//! One Kalman-filtered track's bookkeeping, shared by ByteTrack and SORT.

use super::assign::Ltwh;
use super::kalman::{Kalman, Xyah};
use super::Track;
use crate::engine::{BBox, Detection};

#[derive(Debug, Clone)]
pub(crate) struct KfTrack {
    pub id: String,
    pub label: String,
    pub class_id: usize,
    pub kf: Kalman,
    pub score: f32,
    pub hits: u32,
    /// Consecutive matched frames (SORT confirms on this).
    pub streak: u32,
    pub missed: u32,
    pub confirmed: bool,
    /// The last matched detection's box: where a lost track is looked for again (OC-SORT's
    /// observation-centric recovery), since the prediction drifts while coasting.
    pub last_obs: Ltwh,
}

fn ltwh(d: &Detection) -> Ltwh {
    [d.bbox.l, d.bbox.t, d.bbox.w, d.bbox.h]
}

fn xyah(d: &Detection) -> Xyah {
    Xyah::from_ltwh(d.bbox.l, d.bbox.t, d.bbox.w, d.bbox.h)
}

impl KfTrack {
    pub fn new(id: String, d: &Detection, min_hits: u32) -> Self {
        KfTrack {
            id,
            label: d.label.clone(),
            class_id: d.class_id,
            kf: Kalman::initiate(xyah(d)),
            score: d.confidence,
            hits: 1,
            streak: 1,
            missed: 0,
            confirmed: min_hits <= 1,
            last_obs: ltwh(d),
        }
    }

    /// Advances the filter one frame; a coasting track keeps its size.
    pub fn predict(&mut self) {
        if self.missed > 0 {
            self.kf.freeze_size();
        }
        self.kf.predict();
    }

    /// Where the filter puts the box now.
    pub fn ltwh(&self) -> Ltwh {
        self.kf.xyah().to_ltwh()
    }

    pub fn matched(&mut self, d: &Detection) {
        self.kf.update(xyah(d));
        self.last_obs = ltwh(d);
        self.score = d.confidence;
        self.hits = self.hits.saturating_add(1);
        self.streak = self.streak.saturating_add(1);
        self.missed = 0;
    }

    /// Found again near where it was last seen after coasting: the velocity learnt before
    /// the gap is stale, so the filter starts over at the detection (the id stays).
    pub fn recovered(&mut self, d: &Detection) {
        self.kf = Kalman::initiate(xyah(d));
        self.matched(d);
    }

    pub fn unmatched(&mut self) {
        self.missed = self.missed.saturating_add(1);
        self.streak = 0;
    }

    pub fn track(&self) -> Track {
        let [l, t, w, h] = self.ltwh();
        Track {
            id: self.id.clone(),
            label: self.label.clone(),
            class_id: self.class_id,
            bbox: BBox { l, t, w, h },
            score: self.score,
            confirmed: self.confirmed,
            hits: self.hits,
            missed: self.missed,
        }
    }
}
