//! The detect step of the inference stage: frames go to the engine's instance pool, results
//! come back through the reorder window in frame order. One thread (the inference loop)
//! drives it, so everything after detection stays single-threaded and ordered.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, RecvTimeoutError};

use super::mux::Next;
use super::reorder::{Release, Reorder};
use super::Stats;
use crate::engine::layout::MAX_INSTANCES;
use crate::engine::pool::{Done, Job, Pool};
use crate::engine::{DetectionFilter, Engine};
use crate::ingest::Frame;

/// Results that may wait in the reorder window for a slow frame.
const WINDOW: usize = MAX_INSTANCES + 1;
/// How long `next` waits for input before it reports [`Step::Idle`].
pub(super) const IDLE: Duration = Duration::from_millis(250);

/// Whether one more frame may go out. Frames in flight are bounded by `cap` (one running
/// per instance, one waiting), and frames in flight plus results held for a slow one by
/// the reorder window: the held results are no longer in flight, so without the second
/// bound the other instances would run on past a slow frame until the window gave it up
/// as late.
fn has_room(in_flight: usize, held: usize, cap: usize) -> bool {
    in_flight < cap && in_flight + held < WINDOW
}

/// What the inference loop handles next.
pub(super) enum Step<M> {
    /// A new frame to admit and submit.
    Frame(Frame),
    /// A detected frame, in frame order.
    Result(Done<M>),
    /// A source joined or ended; handed over only once no frame is in flight, so a
    /// source's state is never made or dropped under one of its frames.
    Source(Next),
    /// Nothing arrived for [`IDLE`]: time-based work (event batches of stalled sources).
    Idle,
    /// After [`Dispatch::hold`]: every frame in flight came back and was handed out, so
    /// the engine they ran on is referenced by nobody here any more.
    Drained,
    /// The source ended and every frame in flight came back.
    End,
}

pub(super) struct Dispatch<M: Send + 'static> {
    pool: Option<Pool<M>>,
    reorder: Reorder<Done<M>>,
    ready: VecDeque<Done<M>>,
    in_flight: usize,
    next_seq: u64,
    /// A job for an engine with another instance count: it waits until the frames in
    /// flight are back, then runs on a pool of the new size (a swap lands between frames).
    waiting: Option<Job<M>>,
    /// A source join/leave waiting for the frames in flight to come back.
    event: Option<Next>,
    /// No frame goes out until the ones in flight are back (then [`Step::Drained`]).
    hold: bool,
    input_closed: bool,
    stats: Arc<Stats>,
}

impl<M: Send + 'static> Dispatch<M> {
    pub fn new(stats: Arc<Stats>) -> Dispatch<M> {
        Dispatch {
            pool: None,
            // Never less than what `has_room` lets out: a window that moves on means a
            // lost result, not a slow one.
            reorder: Reorder::new(WINDOW),
            ready: VecDeque::new(),
            in_flight: 0,
            next_seq: 0,
            waiting: None,
            event: None,
            hold: false,
            input_closed: false,
            stats,
        }
    }

    /// Frames in flight at most: one running per instance and one waiting for the first
    /// free instance, so live sources stay newest-frame-wins.
    fn cap(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.size() + 1)
    }

    /// The next thing to handle: a finished frame in order first, else a new frame when
    /// there is room for one.
    pub fn next(&mut self, frames: &Receiver<Next>) -> Step<M> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Step::Result(d);
            }
            if self.in_flight == 0 && self.event.is_some() {
                if let Some(e) = self.event.take() {
                    return Step::Source(e);
                }
            }
            if self.in_flight == 0 && self.waiting.is_some() {
                if !self.start_waiting() {
                    return Step::End;
                }
                continue;
            }
            if self.hold && self.in_flight == 0 {
                // Results held for a frame that never comes back go first, in order.
                let rest: Vec<_> = self.reorder.drain();
                if !rest.is_empty() {
                    self.release(rest);
                    continue;
                }
                self.hold = false;
                return Step::Drained;
            }
            let room = !self.hold
                && self.waiting.is_none()
                && self.event.is_none()
                && !self.input_closed
                && has_room(self.in_flight, self.reorder.held(), self.cap());
            let pool = match &self.pool {
                Some(p) if self.in_flight > 0 => p,
                _ if room => {
                    let next = match frames.recv_timeout(IDLE) {
                        Ok(n) => Some(n),
                        Err(RecvTimeoutError::Timeout) => return Step::Idle,
                        Err(RecvTimeoutError::Disconnected) => None,
                    };
                    if let Some(f) = self.input(next) {
                        return Step::Frame(f);
                    }
                    continue;
                }
                _ => {
                    let rest: Vec<_> = self.reorder.drain();
                    if rest.is_empty() {
                        return Step::End;
                    }
                    self.release(rest);
                    continue;
                }
            };
            let done = if room {
                select! {
                    recv(frames) -> f => match self.input(f.ok()) {
                        Some(f) => return Step::Frame(f),
                        None => continue,
                    },
                    recv(pool.results()) -> d => d,
                    default(IDLE) => return Step::Idle,
                }
            } else {
                pool.results().recv()
            };
            match done {
                Ok(d) => self.accept(d),
                // Workers only go when the pool drops; nothing more will come back.
                Err(_) => {
                    tracing::error!("inference workers are gone");
                    return Step::End;
                }
            }
        }
    }

    /// Stops sending frames until the ones in flight are back and handed out, then
    /// reports [`Step::Drained`] once.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// A frame to hand out, or `None` after noting a source event or the end of input.
    fn input(&mut self, next: Option<Next>) -> Option<Frame> {
        match next {
            Some(Next::Frame(f)) => Some(f),
            Some(Next::Closed) | None => {
                self.input_closed = true;
                None
            }
            Some(e) => {
                self.event = Some(e);
                None
            }
        }
    }

    /// Sends a frame to the instances of `engine`.
    pub fn submit(&mut self, engine: Arc<Engine>, frame: Frame, filter: DetectionFilter, meta: M) {
        let job = Job {
            seq: self.next_seq,
            engine,
            frame,
            filter,
            meta,
        };
        self.next_seq += 1;
        let fits = self
            .pool
            .as_ref()
            .is_some_and(|p| p.size() == job.engine.instances());
        if !fits {
            self.waiting = Some(job);
            return;
        }
        self.send(job);
    }

    fn send(&mut self, job: Job<M>) {
        let Some(pool) = &self.pool else { return };
        match pool.submit(job) {
            Ok(()) => self.in_flight += 1,
            Err(job) => {
                // Only when the workers are gone: the frame is skipped, the window moves on.
                tracing::error!(frame = job.frame.seq, "inference workers are gone");
                self.late_or_lost(1);
            }
        }
    }

    /// Replaces the pool by one sized for the waiting job's engine, then sends the job.
    fn start_waiting(&mut self) -> bool {
        let Some(job) = self.waiting.take() else {
            return true;
        };
        let size = job.engine.instances();
        self.pool = None; // joins the old workers (all idle: nothing is in flight)
        match Pool::new(size) {
            Ok(p) => {
                tracing::debug!(instances = size, "instance pool ready");
                self.pool = Some(p);
                self.send(job);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the inference workers");
                false
            }
        }
    }

    fn accept(&mut self, done: Done<M>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let released = self.reorder.push(done.seq, done);
        self.release(released);
    }

    fn release(&mut self, released: Vec<Release<Done<M>>>) {
        for r in released {
            match r {
                Release::InOrder(_, d) => self.ready.push_back(d),
                Release::Late(seq, d) => {
                    // Tracking and messages never go back in time: the frame is counted, not used.
                    tracing::warn!(
                        seq,
                        frame = d.frame.seq,
                        due = self.reorder.next_due(),
                        held = self.reorder.held(),
                        "frame came back after its turn; dropped"
                    );
                    self.late_or_lost(1);
                }
            }
        }
    }

    fn late_or_lost(&self, n: u64) {
        self.stats.frames_late.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// The dispatcher's admission rule with the real reorder window, instance 0 stuck on
    /// its first frame while the others keep finishing theirs (a descheduled thread on a
    /// busy machine): nothing may come back late, however long the stall.
    fn stalled_instance_run(instances: usize, stall: usize) -> (Vec<u64>, u64) {
        let cap = instances + 1;
        let mut reorder = Reorder::<u64>::new(WINDOW);
        let mut queue: VecDeque<u64> = VecDeque::new(); // submitted, not yet running
        let mut running: Vec<Option<u64>> = vec![None; instances];
        let (mut next_seq, mut in_flight, mut steps) = (0u64, 0usize, 0usize);
        let mut out = Vec::new();
        let total = 200u64;
        while (out.len() as u64) < total && steps < 10_000 {
            steps += 1;
            // Admit as many frames as the rule allows.
            while next_seq < total && has_room(in_flight, reorder.held(), cap) {
                queue.push_back(next_seq);
                next_seq += 1;
                in_flight += 1;
            }
            for slot in running.iter_mut() {
                if slot.is_none() {
                    *slot = queue.pop_front();
                }
            }
            // Instance 0 finishes only after `stall` steps; the others every step.
            let finished: Vec<u64> = running
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| *i != 0 || steps > stall)
                .filter_map(|(_, s)| s.take())
                .collect();
            for seq in finished {
                in_flight -= 1;
                for r in reorder.push(seq, seq) {
                    if let Release::InOrder(s, _) = r {
                        out.push(s);
                    }
                }
            }
        }
        (out, reorder.late())
    }

    #[test]
    fn a_stalled_instance_never_makes_a_frame_late() {
        for instances in [2, 3, MAX_INSTANCES] {
            for stall in [1, 5, WINDOW, 3 * WINDOW, 100] {
                let (out, late) = stalled_instance_run(instances, stall);
                assert_eq!(late, 0, "{instances} instances, stall {stall}");
                assert_eq!(out, (0..200).collect::<Vec<_>>(), "all, in order");
            }
        }
    }

    /// A hold lets every frame in flight come back and be handed out, in order, before
    /// `Drained`; no frame goes out meanwhile, and frames flow again after it.
    #[test]
    fn a_hold_hands_back_the_frames_in_flight_before_drained() {
        let engine = Arc::new(crate::pipeline::tune::tests::engine(2, 1));
        let (tx, rx) = crossbeam_channel::unbounded();
        for seq in 0..12u64 {
            let frame = Frame {
                seq,
                ..Frame::blank((300, 300), 640, 480)
            };
            tx.send(Next::Frame(frame)).expect("send");
        }
        tx.send(Next::Closed).expect("send");
        let mut d = Dispatch::<u64>::new(Stats::new(Default::default()));
        let (mut out, mut log, mut held_at) = (Vec::new(), String::new(), None);
        loop {
            match d.next(&rx) {
                Step::Frame(f) => {
                    log.push('F');
                    let seq = f.seq;
                    d.submit(engine.clone(), f, DetectionFilter::default(), seq);
                }
                Step::Result(done) => {
                    assert!(done.result.is_ok());
                    log.push('R');
                    out.push(done.meta);
                    if out.len() == 4 {
                        d.hold();
                        held_at = Some(log.len());
                    }
                }
                Step::Drained => log.push('D'),
                Step::End => break,
                Step::Idle | Step::Source(_) => {}
            }
        }
        assert_eq!(
            out,
            (0..12).collect::<Vec<_>>(),
            "every frame once, in order"
        );
        let (before, after) = log.split_at(held_at.expect("held"));
        let drained = after.find('D').expect("drained");
        let in_flight = before.matches('F').count() - before.matches('R').count();
        assert!(in_flight > 0, "nothing was in flight at the hold: {log}");
        assert_eq!(&after[..drained], "R".repeat(in_flight), "{log}");
        assert_eq!(log.matches('D').count(), 1, "{log}");
        assert!(after[drained..].contains('F'), "frames flow again: {log}");
    }
}
