//! The pure part of layout tuning: candidate layouts measured one after another on
//! in-order frame completions, each for a share of the budget; the fastest wins.

use std::time::{Duration, Instant};

use crate::defaults;
use crate::engine::layout::LayoutFps;
use crate::engine::Layout;

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

    /// One frame of the current layout came back at `now`; `ok`: it was detected. A failed
    /// frame ends the layout's trial at 0 fps: failures come back fast, and counted as
    /// throughput they would make a layout that cannot run (too many instances for the
    /// memory, say) look the fastest.
    pub fn frame(&mut self, now: Instant, ok: bool) -> Verdict {
        let Some(cur) = self.current() else {
            return Verdict::Settle(self.best());
        };
        if !ok {
            return self.skip();
        }
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

    /// Gives up on the current layout (it failed to load or to run): it scores 0.
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
            let v = t.frame(*clock, true);
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

    #[test]
    fn a_layout_whose_frames_fail_scores_zero_and_is_never_chosen() {
        let mut t = Trials::new(vec![l(1, 2), l(2, 1)], Duration::from_millis(200));
        let mut clock = Instant::now();
        assert_eq!(run(&mut t, &mut clock, 50.0), Verdict::Try(l(2, 1)));
        // 2x1 runs a few frames, then fails fast (and would have looked fastest).
        for _ in 0..3 {
            clock += Duration::from_millis(1);
            assert_eq!(t.frame(clock, true), Verdict::Continue);
        }
        clock += Duration::from_micros(10);
        assert_eq!(t.frame(clock, false), Verdict::Settle(l(1, 2)));
        assert_eq!(t.results()[1].fps, 0.0);
        // Every layout failing: the first candidate serves (nothing better is known).
        let mut t = Trials::new(vec![l(1, 2), l(2, 1)], Duration::from_millis(200));
        assert_eq!(t.frame(clock, false), Verdict::Try(l(2, 1)));
        assert_eq!(t.frame(clock, false), Verdict::Settle(l(1, 2)));
    }
}
