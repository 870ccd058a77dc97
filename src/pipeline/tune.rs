//! Layout auto-tuning in the running pipeline: when threads or instances are `auto`, the
//! first frames after a model loads run on each candidate layout in turn (decode, tracking
//! and publishing all running, as in production), each timed for a share of
//! `LAYOUT_TUNE_BUDGET`; the fastest stays. `Trials` (trials.rs) is the pure part;
//! `AutoLayout` swaps the layouts into the engine slot between frames.
//!
//! Two layouts never hold sessions at once (peak RSS is what container limits see): a
//! verdict only records a pending relayout, the dispatcher lets the frames in flight come
//! back, and `drained` then drops the old layout's sessions before it loads the next.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{EngineSlot, Stats};
use crate::defaults;
use crate::engine::layout::{LayoutFps, LayoutReport};
use crate::engine::{layout, Engine, Layout};

mod swap;
mod trials;

use swap::{load, unload};

pub use trials::{Trials, Verdict};

enum State {
    Idle,
    Trying {
        trials: Arc<Mutex<Trials>>,
        engine: u64,
    },
    Settled {
        engine: u64,
    },
}

/// A relayout decided on a frame, loaded once the frames in flight are back.
#[derive(Debug)]
struct Pending {
    /// The engine it replaces.
    from: u64,
    layout: Layout,
    /// The tuner's verdict when this is the chosen layout (tuning is over).
    chosen: Option<LayoutReport>,
    since: Instant,
}

/// The layout that served, to load again after a relayout found neither it nor the next
/// one loadable (the old sessions were already gone): retried on idle ticks with backoff.
#[derive(Debug)]
struct Retry {
    /// The session-less copy holding the slot.
    shell: u64,
    layout: Layout,
    at: Instant,
    wait: Duration,
}

impl Retry {
    /// The first reload of `layout` into the copy `shell`, `after` from now.
    fn first(shell: u64, layout: Layout, after: Duration) -> Retry {
        Retry {
            shell,
            layout,
            at: Instant::now() + after,
            wait: defaults::LAYOUT_RELOAD_RETRY_MIN,
        }
    }
}

/// Watches which engine each in-order frame ran on and tunes engines whose layout is `auto`.
pub(super) struct AutoLayout {
    state: State,
    /// Engines this tuner loaded.
    made: Vec<u64>,
    pending: Option<Pending>,
    retry: Option<Retry>,
}

impl AutoLayout {
    pub fn new() -> AutoLayout {
        AutoLayout {
            state: State::Idle,
            made: Vec::new(),
            pending: None,
            retry: None,
        }
    }

    /// A relayout waits: no frame may go out until [`AutoLayout::drained`].
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Sees one in-order result's engine and whether its frame was detected (`ok`); may
    /// decide on another layout of it (pending).
    pub fn observe(&mut self, engine: &Engine, ok: bool, stats: &Stats) {
        if self.pending.is_some() {
            return; // the old layout's last frames: not part of the next measurement
        }
        let id = engine.id();
        let verdict = match &mut self.state {
            State::Settled { engine } if *engine == id => return,
            State::Trying { trials, engine } if *engine == id => {
                lock(trials).frame(Instant::now(), ok)
            }
            State::Trying { .. } if self.made.contains(&id) => return,
            _ => return self.start(engine, stats),
        };
        self.pending = self.plan(verdict, engine, true, stats);
    }

    fn start(&mut self, engine: &Engine, stats: &Stats) {
        self.made.clear();
        let now = engine.layout();
        if !engine.is_loaded() {
            // A relayout left the session-less copy serving, and the pipeline restarted
            // since (its tuner, and the retry it had planned, went with it): load it again.
            tracing::warn!(layout = %now, "the engine has no sessions; loading its layout again");
            self.state = State::Settled {
                engine: engine.id(),
            };
            self.retry = Some(Retry::first(engine.id(), now, Duration::ZERO));
            return;
        }
        if let Some(r) = engine.tuned() {
            self.state = State::Settled {
                engine: engine.id(),
            };
            stats.set_layout(r.clone());
            return;
        }
        let mut candidates = engine.layout_request().candidates(layout::cores());
        self.state = State::Settled {
            engine: engine.id(),
        };
        if candidates.len() <= 1 || !candidates.contains(&now) {
            tracing::info!(layout = %now, "engine layout (fixed)");
            stats.set_layout(report(now, None, "fixed", Vec::new()));
            return;
        }
        // A pipeline that restarted mid-tuning resumes it on the layout it had reached.
        let resumed = lock(engine.tuning())
            .as_ref()
            .and_then(|b| b.downcast_ref::<Arc<Mutex<Trials>>>())
            .filter(|t| lock(t).current() == Some(now))
            .cloned();
        if let Some(trials) = resumed {
            lock(&trials).restart_current();
            tracing::info!(layout = %now, "resuming layout tuning after a source restart");
            self.made.push(engine.id());
            self.state = State::Trying {
                trials,
                engine: engine.id(),
            };
            return;
        }
        // The layout already loaded goes first: no load before the first measurement.
        candidates.retain(|l| *l != now);
        candidates.insert(0, now);
        let names: Vec<String> = candidates.iter().map(Layout::to_string).collect();
        tracing::info!(layouts = %names.join(", "), "tuning the engine layout on the stream");
        self.made.push(engine.id());
        let trials = Arc::new(Mutex::new(Trials::new(
            candidates,
            defaults::LAYOUT_TUNE_BUDGET,
        )));
        *lock(engine.tuning()) = Some(Box::new(trials.clone()));
        self.state = State::Trying {
            trials,
            engine: engine.id(),
        };
    }

    /// What a verdict on `engine`'s frames leaves to load. `loaded`: its sessions still
    /// serve (then settling on its own layout needs no load).
    fn plan(
        &mut self,
        verdict: Verdict,
        engine: &Engine,
        loaded: bool,
        stats: &Stats,
    ) -> Option<Pending> {
        let State::Trying { trials, engine: id } = &self.state else {
            return None;
        };
        let (trials, from) = (trials.clone(), *id);
        let pending = |layout, chosen| Pending {
            from,
            layout,
            chosen,
            since: Instant::now(),
        };
        match verdict {
            Verdict::Continue => None,
            Verdict::Try(next) => Some(pending(next, None)),
            Verdict::Settle(best) => {
                let trials = lock(&trials);
                let tried = trials.results().to_vec();
                let table: Vec<String> = tried
                    .iter()
                    .map(|r| format!("{}x{}: {} fps", r.instances, r.threads, r.fps))
                    .collect();
                tracing::info!(layout = %best, measured = %table.join(", "), "engine layout chosen");
                let verdict = report(best, fps_of(&tried, best), "auto", tried);
                *lock(engine.tuning()) = None;
                self.state = State::Settled { engine: from };
                if loaded && engine.layout() == best {
                    engine.set_tuned(verdict.clone());
                    stats.set_layout(verdict);
                    return None;
                }
                Some(pending(best, Some(verdict)))
            }
        }
    }

    /// The frames in flight are back: drops the old layout's sessions, then loads the
    /// pending layout into the slot, unless another model swapped in meanwhile (that model
    /// is then tuned on its own). The stream pauses for one load.
    pub fn drained(&mut self, slot: &EngineSlot, stats: &Stats) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let drain_ms = p.since.elapsed().as_millis() as u64;
        let Some(shell) = unload(slot, p.from) else {
            self.state = State::Idle;
            return;
        };
        let serving = shell.layout();
        loop {
            if slot.load().id() != shell.id() {
                // A model swapped in meanwhile: no load beside its sessions.
                self.state = State::Idle;
                return;
            }
            let t0 = Instant::now();
            match load(&shell, p.layout) {
                Ok(e) => {
                    let load_ms = t0.elapsed().as_millis() as u64;
                    tracing::info!(from = %serving, to = %p.layout, drain_ms, load_ms, "relayout (the old sessions went first)");
                    if let Some(r) = &p.chosen {
                        e.set_tuned(r.clone());
                    }
                    if self.install(&shell, e, slot) {
                        // Reported once the chosen layout serves (the bench measures from here).
                        if let Some(r) = p.chosen {
                            stats.set_layout(r);
                        }
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(layout = %p.layout, error = %e, "layout failed to load or run; skipped");
                    match self.after_failure(p, serving, &shell, stats) {
                        Some(next) => p = next,
                        None => {
                            tracing::error!(layout = %serving, "the layout that served no longer loads either; frames fail until it loads again (retried with backoff) or another model is loaded");
                            self.state = State::Settled { engine: shell.id() };
                            let wait = defaults::LAYOUT_RELOAD_RETRY_MIN;
                            self.retry = Some(Retry::first(shell.id(), serving, wait));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Called on the dispatcher's ticks: loads the layout that served again when a relayout
    /// left only the session-less copy (see [`Retry`]), doubling the wait after each failure.
    pub fn retry(&mut self, slot: &EngineSlot, stats: &Stats, now: Instant) {
        let Some(r) = self.retry.as_mut() else {
            return;
        };
        if now < r.at {
            return;
        }
        let shell = slot.load_full();
        if shell.id() != r.shell {
            self.retry = None; // another model was loaded: nothing to restore
            return;
        }
        match load(&shell, r.layout) {
            Ok(e) => {
                tracing::info!(layout = %r.layout, "the layout that served loads again");
                let layout = r.layout;
                self.retry = None;
                if self.install(&shell, e, slot) {
                    stats.set_layout(report(layout, None, "auto", Vec::new()));
                }
            }
            Err(e) => {
                r.wait = (r.wait * 2).min(defaults::LAYOUT_RELOAD_RETRY_MAX);
                r.at = now + r.wait;
                tracing::warn!(layout = %r.layout, error = %e, retry_in_s = r.wait.as_secs(), "the layout that served still does not load");
            }
        }
    }

    /// What to load after `failed` did not: the next candidate while trying, else the
    /// layout that served before (reported as what serves).
    fn after_failure(
        &mut self,
        failed: Pending,
        serving: Layout,
        shell: &Engine,
        stats: &Stats,
    ) -> Option<Pending> {
        match failed.chosen {
            None => {
                let State::Trying { trials, .. } = &self.state else {
                    return None;
                };
                let verdict = lock(&trials.clone()).skip();
                self.plan(verdict, shell, false, stats)
            }
            Some(r) if failed.layout != serving => {
                tracing::warn!(layout = %serving, "chosen layout failed to load; back to the one that served");
                let fps = fps_of(&r.tried, serving);
                Some(Pending {
                    layout: serving,
                    chosen: Some(report(serving, fps, "auto", r.tried)),
                    ..failed
                })
            }
            Some(_) => None,
        }
    }

    /// Puts `new` in the slot in place of `shell` unless another model swapped in meanwhile.
    fn install(&mut self, shell: &Arc<Engine>, new: Engine, slot: &EngineSlot) -> bool {
        let new = Arc::new(new);
        let id = new.id();
        let prev = slot.compare_and_swap(shell, new);
        if !Arc::ptr_eq(&*prev, shell) {
            self.state = State::Idle;
            return false;
        }
        self.made.push(id);
        match &mut self.state {
            State::Trying { engine, .. } | State::Settled { engine } => *engine = id,
            State::Idle => {}
        }
        true
    }
}

fn fps_of(tried: &[LayoutFps], l: Layout) -> Option<f64> {
    tried
        .iter()
        .find(|r| r.instances == l.instances && r.threads == l.threads)
        .map(|r| r.fps)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn report(
    l: Layout,
    fps: Option<f64>,
    chosen: &'static str,
    tried: Vec<LayoutFps>,
) -> LayoutReport {
    LayoutReport {
        instances: l.instances,
        threads: l.threads,
        fps,
        chosen,
        tried,
    }
}

#[cfg(test)]
pub(super) mod tests;
