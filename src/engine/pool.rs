//! The instance pool: K worker threads, worker `i` running instance `i` of whatever engine
//! a job carries, fed by one bounded job queue. Results come back tagged with their
//! sequence number, in completion order; `pipeline/reorder.rs` puts them back in order.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::{Detection, DetectionFilter, Engine, EngineError, StageTimes};
use crate::ingest::Frame;

/// One frame to detect on, with whatever the caller needs back (`meta`).
pub struct Job<M> {
    pub seq: u64,
    pub engine: Arc<Engine>,
    pub frame: Frame,
    pub filter: DetectionFilter,
    pub meta: M,
}

/// A finished job: the frame and engine come back with the result.
pub struct Done<M> {
    pub seq: u64,
    pub engine: Arc<Engine>,
    pub frame: Frame,
    pub meta: M,
    pub result: Result<(Vec<Detection>, StageTimes), EngineError>,
}

pub struct Pool<M: Send + 'static> {
    jobs: Option<Sender<Job<M>>>,
    results: Receiver<Done<M>>,
    workers: Vec<JoinHandle<()>>,
}

impl<M: Send + 'static> Pool<M> {
    /// `size` workers (at least one) and a job queue of `size`: each instance has at
    /// most one frame waiting for it, so live sources stay newest-frame-wins per instance.
    pub fn new(size: usize) -> std::io::Result<Pool<M>> {
        let size = size.max(1);
        let (jobs_tx, jobs_rx) = bounded::<Job<M>>(size);
        // Unbounded but never longer than the jobs in flight, which the caller bounds.
        let (done_tx, results) = unbounded::<Done<M>>();
        let mut workers = Vec::with_capacity(size);
        for i in 0..size {
            let (rx, tx) = (jobs_rx.clone(), done_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("infer-{i}"))
                .spawn(move || worker(i, rx, tx));
            match spawned {
                Ok(h) => workers.push(h),
                Err(e) => {
                    drop(jobs_tx);
                    for h in workers {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            results,
            workers,
        })
    }

    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Queues a job, waiting while every instance already has one waiting. `Err` gives the
    /// job back if the workers are gone (they only go when the pool drops).
    pub fn submit(&self, job: Job<M>) -> Result<(), Box<Job<M>>> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(job)),
        }
    }

    /// Finished jobs, in completion order.
    pub fn results(&self) -> &Receiver<Done<M>> {
        &self.results
    }
}

impl<M: Send + 'static> Drop for Pool<M> {
    /// Closes the queue; workers finish the job in hand and exit.
    fn drop(&mut self) {
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker<M>(i: usize, jobs: Receiver<Job<M>>, done: Sender<Done<M>>) {
    while let Ok(job) = jobs.recv() {
        let Job {
            seq,
            engine,
            frame,
            filter,
            meta,
        } = job;
        // A panicking backend must not lose the frame: the reorder window waits for it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.detect_frame_on(i, &frame, &filter)
        }))
        .unwrap_or_else(|_| {
            Err(EngineError::Inference {
                message: "the backend panicked".into(),
            })
        });
        let out = Done {
            seq,
            engine,
            frame,
            meta,
            result,
        };
        if done.send(out).is_err() {
            return;
        }
    }
}
