//! The frame supply of the inference stage: one bounded queue per source (live ones
//! newest-wins, filled by their own ingest thread), read in the order `schedule` picks.
//! Sources join and leave while it runs; a source whose queue closes (its ingest ended or
//! was stopped) is reported once as ended, and the others never wait on it. A source that
//! restarts under the same key joins only once its old queue has ended and drained, so the
//! inference stage never holds two states for one key (two snapshot uploaders on one
//! journal).

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
    /// Open queues by source id, with their source's key.
    queues: BTreeMap<u32, (String, Receiver<Frame>)>,
    /// Joins whose key still has an open queue (a restart racing its old self), in order.
    held: Vec<Join>,
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
            held: Vec::new(),
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
            let got = self.turns.next(|id| match queues.get(&id)?.1.try_recv() {
                Ok(f) => Some(f),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    ended.push(id);
                    None
                }
            });
            let any_ended = !ended.is_empty();
            for id in ended {
                self.queues.remove(&id);
                self.turns.remove(id);
                self.pending.push_back(Next::Ended(id));
            }
            if any_ended {
                // After its old self's `Ended`: the stage ends that state first.
                for j in std::mem::take(&mut self.held) {
                    self.admit(j);
                }
            }
            if let Some((id, mut frame)) = got {
                frame.source = id;
                return Next::Frame(frame);
            }
            if !self.pending.is_empty() {
                continue;
            }
            if !self.joins_open && self.queues.is_empty() && self.held.is_empty() {
                return Next::Closed;
            }
            self.wait();
        }
    }

    /// Blocks until some queue has a frame (or closed) or a source joins, at most `WAIT`.
    fn wait(&self) {
        let mut sel = Select::new();
        for (_, rx) in self.queues.values() {
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
                Ok(j) => self.admit(j),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.joins_open = false,
            }
        }
    }

    /// Lets a source in, or holds it back while a queue with its key is still open.
    fn admit(&mut self, j: Join) {
        if self.queues.values().any(|(key, _)| *key == j.info.key) {
            self.held.push(j);
            return;
        }
        let id = j.info.id;
        self.queues.insert(id, (j.info.key.clone(), j.frames));
        self.turns.add(id);
        self.pending.push_back(Next::Joined(j.info));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sources::SourceStats;
    use crossbeam_channel::{bounded, Sender};

    /// Joins source `id` under `key`; its frame queue's sending end.
    fn join(joins: &Sender<Join>, id: u32, key: &str, frames: &[u64]) -> Sender<Frame> {
        let (tx, rx) = bounded(8);
        let info = SourceInfo {
            id,
            key: key.into(),
            name: None,
            stats: SourceStats::new(&Default::default()),
            max_fps: Default::default(),
            snapshots: None,
        };
        joins.send(Join { info, frames: rx }).expect("join");
        for seq in frames {
            let f = Frame {
                seq: *seq,
                ..Frame::blank((2, 2), 4, 4)
            };
            tx.send(f).expect("frame");
        }
        tx
    }

    fn what(n: Next) -> String {
        match n {
            Next::Joined(i) => format!("joined {}", i.id),
            Next::Frame(f) => format!("frame {} of {}", f.seq, f.source),
            Next::Ended(id) => format!("ended {id}"),
            Next::Closed => "closed".into(),
        }
    }

    #[test]
    fn a_source_restarted_under_its_key_joins_once_its_old_self_has_drained() {
        let (joins, rx) = bounded(16);
        let mut mux = Mux::new(rx);
        let old = join(&joins, 0, "cam", &[1, 2]);
        let new = join(&joins, 1, "cam", &[10]);
        drop((old, new, joins));
        let mut seen = Vec::new();
        loop {
            let w = what(mux.next());
            if w == "closed" {
                break;
            }
            seen.push(w);
        }
        assert_eq!(
            seen,
            [
                "joined 0",
                "frame 1 of 0",
                "frame 2 of 0",
                "ended 0",
                "joined 1",
                "frame 10 of 1",
                "ended 1"
            ]
        );
    }
}
