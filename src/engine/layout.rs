//! Engine layout: how many instances of a model run side by side on consecutive frames,
//! and how many intra-op threads each one uses. Pure logic; `auto` leaves the choice to the
//! pipeline's tuner (`pipeline/tune.rs`), which measures the candidates listed here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backends::SharedSlot;
use super::{Engine, EngineError, EngineOptions};
use crate::model::Model;

/// Most instances of one model (each holds its own activations).
pub const MAX_INSTANCES: usize = 16;
/// Most intra-op threads per instance.
pub const MAX_THREADS: usize = 64;

/// One layout: `instances` engines, `threads` intra-op threads each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layout {
    pub instances: usize,
    pub threads: usize,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.instances, self.threads)
    }
}

/// What the user asked for; `None` is `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayoutRequest {
    pub instances: Option<usize>,
    pub threads: Option<usize>,
}

impl LayoutRequest {
    /// From CLI-style counts where 0 means `auto`.
    pub fn from_counts(instances: usize, threads: usize) -> LayoutRequest {
        let some = |n: usize| (n > 0).then_some(n);
        LayoutRequest {
            instances: some(instances).map(|n| n.min(MAX_INSTANCES)),
            threads: some(threads).map(|n| n.min(MAX_THREADS)),
        }
    }

    /// The layouts worth measuring on `cores` cores, the one loaded first at the front:
    /// 1xN (lowest latency), Nx1 (frame parallelism, no intra-op sync), 2x(N/2); a fixed
    /// count keeps only the layouts that honour it.
    pub fn candidates(&self, cores: usize) -> Vec<Layout> {
        let n = cores.clamp(1, MAX_INSTANCES.max(MAX_THREADS));
        let raw: Vec<(usize, usize)> = match (self.instances, self.threads) {
            (Some(k), Some(t)) => vec![(k, t)],
            (None, None) => vec![(1, n), (n, 1), (2, n / 2)],
            (None, Some(t)) => vec![(1, t), ((n / t).max(1), t)],
            (Some(k), None) => vec![(k, (n / k).max(1)), (k, 1)],
        };
        let mut out: Vec<Layout> = Vec::new();
        for (instances, threads) in raw {
            if instances == 0 || threads == 0 {
                continue; // 2x(N/2) on one core
            }
            let l = Layout {
                instances: instances.clamp(1, MAX_INSTANCES),
                threads: threads.clamp(1, MAX_THREADS),
            };
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }
}

/// `model.layout` in reported properties: the layout serving and what the tuner measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LayoutReport {
    pub instances: usize,
    pub threads: usize,
    /// Frames per second measured in the pipeline for this layout (None: not measured).
    pub fps: Option<f64>,
    /// `auto` when the tuner chose it, `fixed` when the user did.
    pub chosen: &'static str,
    /// Every layout tried, with its fps.
    pub tried: Vec<LayoutFps>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LayoutFps {
    pub instances: usize,
    pub threads: usize,
    pub fps: f64,
}

/// What an engine shares with its relayouts: weights, the tuner's state, the session count.
pub(super) type Kin = (SharedSlot, SharedSlot, Arc<Sessions>);

/// Backend sessions (one per instance) alive for one model across its relayouts, and the
/// most alive at once: each holds its weights and activations, so the peak bounds RSS.
#[derive(Debug, Default)]
pub struct Sessions {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Sessions {
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub(super) fn opened(&self, n: usize) {
        let live = self.live.fetch_add(n, Ordering::SeqCst) + n;
        self.peak.fetch_max(live, Ordering::SeqCst);
    }

    pub(super) fn closed(&self, n: usize) {
        self.live.fetch_sub(n, Ordering::SeqCst);
    }
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses `auto` or a count in 1..=max (CLI values); `auto` is 0.
pub fn parse_count(s: &str, max: usize) -> Result<usize, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(0);
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is neither `auto` nor a count in 1..={max}")),
    }
}

/// Layouts on the engine: loading one, switching to another, and what the tuner keeps.
impl Engine {
    /// Loads the first candidate layout of `request` (`opts.threads` is ignored).
    pub fn from_model_layout(
        model: Model,
        opts: &EngineOptions,
        request: LayoutRequest,
    ) -> Result<Engine, EngineError> {
        let layout = request.candidates(cores())[0];
        let backend_name = super::pick_backend(opts, &model.manifest)?;
        let kin = (SharedSlot::default(), SharedSlot::default(), Arc::default());
        Self::build(model, backend_name, request, layout, kin)
    }

    /// The same model in another layout, sharing this engine's weights where it can.
    pub fn relayout(&self, layout: Layout) -> Result<Engine, EngineError> {
        let name = self.backend_name.clone();
        let kin = (
            self.shared.clone(),
            self.tuning.clone(),
            self.sessions.clone(),
        );
        Self::build(self.model.clone(), name, self.request, layout, kin)
    }

    /// A copy without sessions, to hold this engine's place in the slot while its sessions
    /// are dropped and another layout loads (detection on it fails; it can relayout).
    pub fn unloaded(&self) -> Engine {
        Engine {
            model: self.model.clone(),
            backend_name: self.backend_name.clone(),
            backends: Vec::new(),
            decoder: self.decoder.clone(),
            thresholds: self.thresholds,
            layout: self.layout,
            request: self.request,
            shared: self.shared.clone(),
            tuning: self.tuning.clone(),
            sessions: self.sessions.clone(),
            id: super::next_id(),
            tuned: std::sync::OnceLock::new(),
        }
    }

    /// False for a session-less copy ([`Engine::unloaded`]): its frames fail.
    pub fn is_loaded(&self) -> bool {
        !self.backends.is_empty()
    }

    /// This model's session count (shared by its relayouts).
    pub fn sessions(&self) -> Arc<Sessions> {
        self.sessions.clone()
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// What the user asked for (`auto` parts are `None`).
    pub fn layout_request(&self) -> LayoutRequest {
        self.request
    }

    /// Instances (pool workers) this engine runs on; one for a session-less copy.
    pub fn instances(&self) -> usize {
        self.backends.len().max(1)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Opaque tuner state shared by this model's relayouts (see `pipeline/tune.rs`).
    pub fn tuning(&self) -> &SharedSlot {
        &self.tuning
    }

    /// The tuner's verdict for this engine, once it has one.
    pub fn tuned(&self) -> Option<&LayoutReport> {
        self.tuned.get()
    }

    pub fn set_tuned(&self, report: LayoutReport) {
        let _ = self.tuned.set(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(instances: usize, threads: usize) -> Layout {
        Layout { instances, threads }
    }

    #[test]
    fn auto_tries_one_by_n_n_by_one_and_halves() {
        let auto = LayoutRequest::default();
        assert_eq!(auto.candidates(2), vec![l(1, 2), l(2, 1)]);
        assert_eq!(auto.candidates(4), vec![l(1, 4), l(4, 1), l(2, 2)]);
        assert_eq!(auto.candidates(1), vec![l(1, 1)]);
        assert_eq!(auto.candidates(0), vec![l(1, 1)]);
    }

    #[test]
    fn fixed_counts_are_honoured() {
        let threads1 = LayoutRequest::from_counts(0, 1);
        assert_eq!(threads1.candidates(4), vec![l(1, 1), l(4, 1)]);
        let two = LayoutRequest::from_counts(2, 0);
        assert_eq!(two.candidates(4), vec![l(2, 2), l(2, 1)]);
        assert_eq!(two.candidates(1), vec![l(2, 1)]);
        assert_eq!(
            LayoutRequest::from_counts(3, 2).candidates(8),
            vec![l(3, 2)]
        );
        assert_eq!(
            LayoutRequest::from_counts(999, 0).instances,
            Some(MAX_INSTANCES)
        );
    }

    #[test]
    fn counts_parse() {
        assert_eq!(parse_count("auto", 16), Ok(0));
        assert_eq!(parse_count("AUTO", 16), Ok(0));
        assert_eq!(parse_count("3", 16), Ok(3));
        assert!(parse_count("0", 16).unwrap_err().contains("1..=16"));
        assert!(parse_count("17", 16).is_err());
        assert!(parse_count("-1", 16).is_err());
        assert_eq!(l(2, 1).to_string(), "2x1");
    }
}
