//! The frame supply of the inference stage: one bounded queue per source (live ones
//! newest-wins, filled by their own ingest thread), read in the order `schedule` picks.
//! Sources join and leave while it runs; a source whose queue closes (its ingest ended or
//! was stopped) is reported once as ended, and the others never wait on it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crossbeam_channel::{Receiver, Select, TryRecvError};

use super::schedule::RoundRobin;
use super::sources::SourceInfo;
use crate::ingest::Frame;

/// Sent by the pipeline when a source starts.
pub(super) struct Join {
    pub info: SourceInfo,
    pub frames: Receiver<Frame>,
}

/// What the inference stage gets next.
pub(super) enum Next {
    /// A new source: set up its state before its first frame.
    Joined(SourceInfo),
    /// A frame, stamped with its source's id.
    Frame(Frame),
    /// The source's queue closed and is drained: end its tracks.
    Ended(u32),
    /// Every source has ended and no more can join.
    Closed,
}

pub(super) struct Mux {
    joins: Receiver<Join>,
    joins_open: bool,
    queues: BTreeMap<u32, Receiver<Frame>>,
    turns: RoundRobin,
    pending: VecDeque<Next>,
}

/// How long one wait lasts before the mux looks again (joins are also waited on).
const WAIT: Duration = Duration::from_millis(200);

impl Mux {
    pub fn new(joins: Receiver<Join>) -> Mux {
        Mux {
            joins,
            joins_open: true,
            queues: BTreeMap::new(),
            turns: RoundRobin::default(),
            pending: VecDeque::new(),
        }
    }

    /// Runs the mux on its own thread, handing out one item at a time (a rendezvous: the
    /// engine's instance pool pulls frames when it has room, and a live source's newest
    /// frame waits in its own queue, not here). Ends after `Closed` or when nobody reads.
    pub fn spawn(mut self) -> std::io::Result<Receiver<Next>> {
        let (tx, rx) = crossbeam_channel::bounded(0);
        std::thread::Builder::new()
            .name("mux".into())
            .spawn(move || loop {
                let next = self.next();
                let closed = matches!(next, Next::Closed);
                if tx.send(next).is_err() || closed {
                    return;
                }
            })?;
        Ok(rx)
    }

    pub fn next(&mut self) -> Next {
        loop {
            self.take_joins();
            if let Some(n) = self.pending.pop_front() {
                return n;
            }
            let mut ended = Vec::new();
            let queues = &self.queues;
            let got = self.turns.next(|id| match queues.get(&id)?.try_recv() {
                Ok(f) => Some(f),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    ended.push(id);
                    None
                }
            });
            for id in ended {
                self.queues.remove(&id);
                self.turns.remove(id);
                self.pending.push_back(Next::Ended(id));
            }
            if let Some((id, mut frame)) = got {
                frame.source = id;
                return Next::Frame(frame);
            }
            if !self.pending.is_empty() {
                continue;
            }
            if !self.joins_open && self.queues.is_empty() {
                return Next::Closed;
            }
            self.wait();
        }
    }

    /// Blocks until some queue has a frame (or closed) or a source joins, at most `WAIT`.
    fn wait(&self) {
        let mut sel = Select::new();
        for rx in self.queues.values() {
            sel.recv(rx);
        }
        if self.joins_open {
            sel.recv(&self.joins);
        }
        let _ = sel.ready_timeout(WAIT);
    }

    fn take_joins(&mut self) {
        while self.joins_open {
            match self.joins.try_recv() {
                Ok(j) => {
                    let id = j.info.id;
                    self.queues.insert(id, j.frames);
                    self.turns.add(id);
                    self.pending.push_back(Next::Joined(j.info));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.joins_open = false,
            }
        }
    }
}
