//! Pure: which source's frame the engine takes next. Round robin over the sources that
//! have a frame waiting, starting after the one served last, so a file that always has a
//! frame ready gets one turn in N and a camera is never starved; a source with nothing
//! waiting (slow, reconnecting or dead) is skipped without waiting for it.

/// Sources are small ids handed out by the pipeline; order of service is order of arrival.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    order: Vec<u32>,
    /// Index in `order` of the source asked first on the next turn.
    cursor: usize,
}

impl RoundRobin {
    /// A new source joins at the end of the round (an id already present is ignored).
    pub fn add(&mut self, id: u32) {
        if !self.order.contains(&id) {
            self.order.push(id);
        }
    }

    /// A removed source leaves the round; the others keep their turn order.
    pub fn remove(&mut self, id: u32) {
        if let Some(i) = self.order.iter().position(|s| *s == id) {
            self.order.remove(i);
            if i < self.cursor {
                self.cursor -= 1;
            }
            if self.cursor >= self.order.len() {
                self.cursor = 0;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Asks each source once, in round-robin order from the cursor, until `take` yields;
    /// that source is served and the next turn starts after it. `None` (cursor unchanged)
    /// when no source has anything.
    pub fn next<T>(&mut self, mut take: impl FnMut(u32) -> Option<T>) -> Option<(u32, T)> {
        let n = self.order.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let id = self.order[i];
            if let Some(v) = take(id) {
                self.cursor = (i + 1) % n;
                return Some((id, v));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};

    /// Queues per source; `serve` runs `turns` picks and returns who was served.
    fn serve(
        rr: &mut RoundRobin,
        queues: &mut BTreeMap<u32, VecDeque<u64>>,
        turns: usize,
    ) -> Vec<u32> {
        (0..turns)
            .filter_map(|_| rr.next(|id| queues.get_mut(&id).and_then(VecDeque::pop_front)))
            .map(|(id, _)| id)
            .collect()
    }

    fn rr(ids: &[u32]) -> RoundRobin {
        let mut r = RoundRobin::default();
        for id in ids {
            r.add(*id);
        }
        r
    }

    #[test]
    fn a_fast_file_cannot_starve_a_camera() {
        // Source 0 is a file with a thousand frames waiting; 1 is a camera with a frame
        // ready every other turn.
        let mut r = rr(&[0, 1]);
        let mut q = BTreeMap::from([
            (0, (0..1000).collect::<VecDeque<u64>>()),
            (1, VecDeque::new()),
        ]);
        let mut served = Vec::new();
        for t in 0..100 {
            if t % 2 == 0 {
                q.get_mut(&1).unwrap().push_back(t);
            }
            served.extend(serve(&mut r, &mut q, 1));
        }
        let camera = served.iter().filter(|s| **s == 1).count();
        assert_eq!(
            camera, 50,
            "every camera frame is served at its turn: {served:?}"
        );
        assert!(q[&1].is_empty());
    }

    #[test]
    fn all_ready_sources_share_turns_evenly() {
        let mut r = rr(&[3, 7, 9]);
        let mut q: BTreeMap<u32, VecDeque<u64>> = [3, 7, 9]
            .iter()
            .map(|id| (*id, (0..100).collect()))
            .collect();
        let served = serve(&mut r, &mut q, 30);
        assert_eq!(&served[..6], &[3, 7, 9, 3, 7, 9]);
        for id in [3, 7, 9] {
            assert_eq!(served.iter().filter(|s| **s == id).count(), 10);
        }
    }

    #[test]
    fn a_dead_source_is_skipped_and_stalls_nobody() {
        let mut r = rr(&[0, 1, 2]);
        // 1 never delivers.
        let mut q = BTreeMap::from([
            (0, (0..10).collect::<VecDeque<u64>>()),
            (1, VecDeque::new()),
            (2, (0..10).collect()),
        ]);
        let served = serve(&mut r, &mut q, 20);
        assert_eq!(
            served.len(),
            20,
            "every turn serves someone while frames wait"
        );
        assert!(!served.contains(&1));
        assert_eq!(served.iter().filter(|s| **s == 0).count(), 10);
        assert_eq!(
            serve(&mut r, &mut q, 1),
            Vec::<u32>::new(),
            "nothing left: no pick"
        );
    }

    #[test]
    fn removing_and_adding_keeps_the_others_turns() {
        let mut r = rr(&[0, 1, 2]);
        let mut q: BTreeMap<u32, VecDeque<u64>> =
            (0..4).map(|id| (id, (0..100).collect())).collect();
        assert_eq!(serve(&mut r, &mut q, 2), vec![0, 1]);
        r.remove(1);
        assert_eq!(serve(&mut r, &mut q, 3), vec![2, 0, 2], "2 keeps its turn");
        r.add(3);
        r.add(3);
        assert_eq!(r.len(), 3, "adding twice is once");
        assert_eq!(serve(&mut r, &mut q, 3), vec![0, 2, 3]);
        r.remove(3);
        r.remove(42);
        assert_eq!(
            serve(&mut r, &mut q, 2),
            vec![0, 2],
            "removing the last wraps"
        );
        r.remove(0);
        r.remove(2);
        assert!(r.is_empty());
        assert_eq!(serve(&mut r, &mut q, 1), Vec::<u32>::new());
    }
}
