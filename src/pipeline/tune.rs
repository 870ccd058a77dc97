//! Layout auto-tuning in the running pipeline: when threads or instances are `auto`, the
//! first frames after a model loads run on each candidate layout in turn (decode, tracking
//! and publishing all running, as in production), each timed for a share of
//! `LAYOUT_TUNE_BUDGET`; the fastest stays. `Trials` is the pure part; `AutoLayout` loads
//! the layouts and swaps them into the engine slot between frames.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{EngineSlot, Stats};
use crate::defaults;
use crate::engine::layout::{LayoutFps, LayoutReport};
use crate::engine::{layout, Engine, Layout};

/// What to do after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Load this layout and measure it next.
    Try(Layout),
    /// Done: serve this layout.
    Settle(Layout),
}

/// Measures candidate layouts one after another on in-order frame completions.
#[derive(Debug)]
pub struct Trials {
    candidates: Vec<Layout>,
    index: usize,
    per_trial: Duration,
    seen: u32,
    /// Set at the last warm-up frame; frames after it are counted.
    started: Option<Instant>,
    counted: u32,
    results: Vec<LayoutFps>,
}

/// Fewest frames a layout is timed on, however short the budget.
const MIN_COUNTED: u32 = 5;

impl Trials {
    pub fn new(candidates: Vec<Layout>, budget: Duration) -> Trials {
        let n = candidates.len().max(1) as u32;
        Trials {
            candidates,
            index: 0,
            per_trial: budget / n,
            seen: 0,
            started: None,
            counted: 0,
            results: Vec::new(),
        }
    }

    pub fn current(&self) -> Option<Layout> {
        self.candidates.get(self.index).copied()
    }

    /// One frame of the current layout came back at `now`.
    pub fn frame(&mut self, now: Instant) -> Verdict {
        let Some(cur) = self.current() else {
            return Verdict::Settle(self.best());
        };
        self.seen += 1;
        let warmup = defaults::LAYOUT_WARMUP_FRAMES_PER_INSTANCE * cur.instances as u32;
        let Some(started) = self.started else {
            if self.seen >= warmup.max(1) {
                self.started = Some(now);
            }
            return Verdict::Continue;
        };
        self.counted += 1;
        let elapsed = now.saturating_duration_since(started);
        if elapsed < self.per_trial || self.counted < MIN_COUNTED {
            return Verdict::Continue;
        }
        self.results.push(LayoutFps {
            instances: cur.instances,
            threads: cur.threads,
            fps: (self.counted as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        });
        self.index += 1;
        (self.seen, self.counted, self.started) = (0, 0, None);
        match self.current() {
            Some(next) => Verdict::Try(next),
            None => Verdict::Settle(self.best()),
        }
    }

    /// The pipeline restarted: the current layout's timing starts over (its warm-up too).
    pub fn restart_current(&mut self) {
        (self.seen, self.counted, self.started) = (0, 0, None);
    }

    /// Gives up on the current layout (it failed to load): it scores 0.
    pub fn skip(&mut self) -> Verdict {
        if let Some(cur) = self.current() {
            self.results.push(LayoutFps {
                instances: cur.instances,
                threads: cur.threads,
                fps: 0.0,
            });
            self.index += 1;
            (self.seen, self.counted, self.started) = (0, 0, None);
        }
        match self.current() {
            Some(next) => Verdict::Try(next),
            None => Verdict::Settle(self.best()),
        }
    }

    /// The fastest layout measured; a later one must beat the best by `LAYOUT_MIN_GAIN`.
    pub fn best(&self) -> Layout {
        let mut best: Option<&LayoutFps> = None;
        for r in &self.results {
            if best.is_none_or(|b| r.fps > b.fps * defaults::LAYOUT_MIN_GAIN) {
                best = Some(r);
            }
        }
        best.map(|b| Layout {
            instances: b.instances,
            threads: b.threads,
        })
        .or_else(|| self.candidates.first().copied())
        .unwrap_or(Layout {
            instances: 1,
            threads: 1,
        })
    }

    pub fn results(&self) -> &[LayoutFps] {
        &self.results
    }
}

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

/// Watches which engine each in-order frame ran on and tunes engines whose layout is `auto`.
pub(super) struct AutoLayout {
    state: State,
    /// Engines this tuner loaded (frames still in flight on an old trial are not counted).
    made: Vec<u64>,
}

impl AutoLayout {
    pub fn new() -> AutoLayout {
        AutoLayout {
            state: State::Idle,
            made: Vec::new(),
        }
    }

    /// Sees one in-order result's engine; may swap another layout of it into `slot`.
    pub fn observe(&mut self, engine: &Arc<Engine>, slot: &EngineSlot, stats: &Stats) {
        let id = engine.id();
        let verdict = match &mut self.state {
            State::Settled { engine } if *engine == id => return,
            State::Trying { trials, engine } if *engine == id => lock(trials).frame(Instant::now()),
            State::Trying { .. } if self.made.contains(&id) => return,
            _ => return self.start(engine, stats),
        };
        self.follow(verdict, engine, slot, stats);
    }

    fn start(&mut self, engine: &Arc<Engine>, stats: &Stats) {
        self.made.clear();
        let now = engine.layout();
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

    fn follow(
        &mut self,
        mut verdict: Verdict,
        engine: &Arc<Engine>,
        slot: &EngineSlot,
        stats: &Stats,
    ) {
        loop {
            let State::Trying { trials, .. } = &self.state else {
                return;
            };
            let trials = trials.clone();
            let mut trials = lock(&trials);
            match verdict {
                Verdict::Continue => return,
                Verdict::Try(next) => match engine.relayout(next) {
                    Ok(e) => return self.swap(engine, e, slot),
                    Err(e) => {
                        tracing::warn!(layout = %next, error = %e, "layout failed to load; skipped");
                        verdict = trials.skip();
                    }
                },
                Verdict::Settle(best) => {
                    let tried = trials.results().to_vec();
                    let fps = tried
                        .iter()
                        .find(|r| r.instances == best.instances && r.threads == best.threads)
                        .map(|r| r.fps);
                    let table: Vec<String> = tried
                        .iter()
                        .map(|r| format!("{}x{}: {} fps", r.instances, r.threads, r.fps))
                        .collect();
                    tracing::info!(layout = %best, measured = %table.join(", "), "engine layout chosen");
                    let mut verdict = report(best, fps, "auto", tried.clone());
                    *lock(engine.tuning()) = None;
                    self.state = State::Settled {
                        engine: engine.id(),
                    };
                    if best == engine.layout() {
                        engine.set_tuned(verdict.clone());
                    } else {
                        match engine.relayout(best) {
                            Ok(e) => {
                                e.set_tuned(verdict.clone());
                                self.swap(engine, e, slot)
                            }
                            Err(e) => {
                                tracing::warn!(layout = %best, error = %e, "chosen layout failed to load; keeping the current one");
                                // Report what serves, not what was chosen.
                                let now = engine.layout();
                                let fps = tried
                                    .iter()
                                    .find(|r| {
                                        r.instances == now.instances && r.threads == now.threads
                                    })
                                    .map(|r| r.fps);
                                verdict = report(now, fps, "auto", tried);
                            }
                        }
                    }
                    // Reported once the chosen layout serves (the bench measures from here).
                    stats.set_layout(verdict);
                    return;
                }
            }
        }
    }

    /// Puts `new` in the slot unless another model swapped in meanwhile (then that model
    /// is tuned on its own).
    fn swap(&mut self, old: &Arc<Engine>, new: Engine, slot: &EngineSlot) {
        let new = Arc::new(new);
        let id = new.id();
        let prev = slot.compare_and_swap(old, new);
        if !Arc::ptr_eq(&*prev, old) {
            self.state = State::Idle;
            return;
        }
        self.made.push(id);
        match &mut self.state {
            State::Trying { engine, .. } | State::Settled { engine } => *engine = id,
            State::Idle => {}
        }
    }
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
mod tests {
    use super::*;

    fn l(instances: usize, threads: usize) -> Layout {
        Layout { instances, threads }
    }

    /// Feeds frames at `fps` until the verdict changes.
    fn run(t: &mut Trials, clock: &mut Instant, fps: f64) -> Verdict {
        let step = Duration::from_secs_f64(1.0 / fps);
        for _ in 0..100_000 {
            *clock += step;
            let v = t.frame(*clock);
            if v != Verdict::Continue {
                return v;
            }
        }
        panic!("never decided");
    }

    #[test]
    fn the_fastest_layout_wins_and_each_gets_a_share_of_the_budget() {
        let mut t = Trials::new(vec![l(1, 2), l(2, 1)], Duration::from_millis(1000));
        let mut clock = Instant::now();
        let t0 = clock;
        assert_eq!(run(&mut t, &mut clock, 190.0), Verdict::Try(l(2, 1)));
        let first = clock - t0;
        assert!(first >= Duration::from_millis(500) && first < Duration::from_millis(600));
        assert_eq!(run(&mut t, &mut clock, 230.0), Verdict::Settle(l(2, 1)));
        let r = t.results();
        assert_eq!(r.len(), 2);
        assert!(
            (r[0].fps - 190.0).abs() < 3.0 && (r[1].fps - 230.0).abs() < 3.0,
            "{r:?}"
        );
    }

    #[test]
    fn a_near_tie_keeps_the_earlier_smaller_layout_and_slow_models_get_enough_frames() {
        let mut t = Trials::new(vec![l(1, 2), l(2, 1)], Duration::from_millis(100));
        let mut clock = Instant::now();
        assert_eq!(run(&mut t, &mut clock, 100.0), Verdict::Try(l(2, 1)));
        assert_eq!(run(&mut t, &mut clock, 101.0), Verdict::Settle(l(1, 2)));
        // 2 fps: far beyond the budget, but still MIN_COUNTED frames after warm-up.
        let mut t = Trials::new(vec![l(1, 1)], Duration::from_millis(10));
        let mut clock = Instant::now();
        assert_eq!(run(&mut t, &mut clock, 2.0), Verdict::Settle(l(1, 1)));
    }

    #[test]
    fn a_layout_that_fails_to_load_scores_zero() {
        let mut t = Trials::new(vec![l(1, 2), l(2, 1), l(2, 2)], Duration::from_millis(300));
        let mut clock = Instant::now();
        assert_eq!(run(&mut t, &mut clock, 50.0), Verdict::Try(l(2, 1)));
        assert_eq!(t.skip(), Verdict::Try(l(2, 2)));
        assert_eq!(run(&mut t, &mut clock, 40.0), Verdict::Settle(l(1, 2)));
        assert_eq!(t.results()[1].fps, 0.0);
    }
}
