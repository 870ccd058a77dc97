//! The reorder window: results of several engine instances arrive in completion order and
//! leave in frame (sequence) order. Pure logic, no threads or clocks.
//!
//! At most `window` results wait for a missing one; when one more arrives the window moves
//! on past the gap, and the missing result, should it come after all, leaves marked late
//! (tracking and publishing must never see time go backwards). Nothing pushed is lost:
//! every item leaves exactly once, in order or late.

use std::collections::BTreeMap;

/// One result leaving the window.
#[derive(Debug, PartialEq, Eq)]
pub enum Release<T> {
    /// Next in frame order.
    InOrder(u64, T),
    /// Arrived after the window had moved past it.
    Late(u64, T),
}

#[derive(Debug)]
pub struct Reorder<T> {
    next: u64,
    window: usize,
    held: BTreeMap<u64, T>,
    late: u64,
}

impl<T> Reorder<T> {
    /// `window` results may wait for a gap (at least one); sequence numbers start at 0.
    pub fn new(window: usize) -> Reorder<T> {
        Reorder {
            next: 0,
            window: window.max(1),
            held: BTreeMap::new(),
            late: 0,
        }
    }

    /// Takes one result; returns those that may leave now, in order.
    pub fn push(&mut self, seq: u64, item: T) -> Vec<Release<T>> {
        if seq < self.next || self.held.contains_key(&seq) {
            self.late += 1;
            return vec![Release::Late(seq, item)];
        }
        self.held.insert(seq, item);
        let mut out = Vec::new();
        loop {
            if let Some(item) = self.held.remove(&self.next) {
                out.push(Release::InOrder(self.next, item));
                self.next += 1;
            } else if self.held.len() > self.window {
                // The gap held the window too long: move on to the oldest result held.
                if let Some((&first, _)) = self.held.first_key_value() {
                    self.next = first;
                }
            } else {
                return out;
            }
        }
    }

    /// End of stream: everything held leaves in order, gaps skipped.
    pub fn drain(&mut self) -> Vec<Release<T>> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::with_capacity(held.len());
        for (seq, item) in held {
            self.next = seq + 1;
            out.push(Release::InOrder(seq, item));
        }
        out
    }

    /// Results that arrived after the window moved past them.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The sequence number due next.
    pub fn next_due(&self) -> u64 {
        self.next
    }

    /// Results waiting for a gap to fill.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(r: &[Release<u64>]) -> Vec<(bool, u64)> {
        r.iter()
            .map(|x| match x {
                Release::InOrder(s, v) => {
                    assert_eq!(s, v);
                    (true, *s)
                }
                Release::Late(s, v) => {
                    assert_eq!(s, v);
                    (false, *s)
                }
            })
            .collect()
    }

    /// A deterministic shuffle that displaces items by at most `spread` places.
    fn jittered(n: u64, spread: u64, salt: u64) -> Vec<u64> {
        let mut keyed: Vec<(u64, u64)> = (0..n)
            .map(|i| {
                let h = (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                (i + h % (spread + 1), i)
            })
            .collect();
        keyed.sort();
        keyed.into_iter().map(|(_, i)| i).collect()
    }

    #[test]
    fn in_order_input_passes_straight_through() {
        let mut r = Reorder::new(4);
        for i in 0..10 {
            assert_eq!(seqs(&r.push(i, i)), vec![(true, i)]);
        }
        assert_eq!((r.late(), r.held()), (0, 0));
    }

    #[test]
    fn out_of_order_within_the_window_leaves_in_order_and_nothing_is_late() {
        for salt in 0..20 {
            let mut r = Reorder::new(4);
            let mut out = Vec::new();
            for i in jittered(200, 4, salt) {
                out.extend(seqs(&r.push(i, i)));
                assert!(r.held() <= 4, "bounded");
            }
            out.extend(seqs(&r.drain()));
            assert_eq!(out, (0..200).map(|i| (true, i)).collect::<Vec<_>>());
            assert_eq!(r.late(), 0);
        }
    }

    #[test]
    fn a_gap_longer_than_the_window_is_skipped_and_its_result_counted_late() {
        let mut r = Reorder::new(2);
        assert!(r.push(1, 1).is_empty());
        assert!(r.push(2, 2).is_empty());
        // A third result waiting on 0: the window moves on.
        assert_eq!(seqs(&r.push(3, 3)), vec![(true, 1), (true, 2), (true, 3)]);
        assert_eq!(seqs(&r.push(0, 0)), vec![(false, 0)]);
        assert_eq!(seqs(&r.push(4, 4)), vec![(true, 4)]);
        assert_eq!(r.late(), 1);
        // A duplicate is late too, never a second in-order result.
        assert_eq!(seqs(&r.push(4, 4)), vec![(false, 4)]);
        assert_eq!(r.late(), 2);
    }

    #[test]
    fn every_item_leaves_exactly_once_whatever_the_order() {
        for salt in 0..20 {
            let mut r = Reorder::new(3);
            let mut out = Vec::new();
            for i in jittered(300, 12, salt) {
                out.extend(seqs(&r.push(i, i)));
                assert!(r.held() <= 3, "bounded");
            }
            out.extend(seqs(&r.drain()));
            let mut all: Vec<u64> = out.iter().map(|(_, s)| *s).collect();
            all.sort();
            assert_eq!(all, (0..300).collect::<Vec<_>>(), "no loss, no duplicate");
            let in_order: Vec<u64> = out.iter().filter(|(o, _)| *o).map(|(_, s)| *s).collect();
            assert!(
                in_order.windows(2).all(|w| w[0] < w[1]),
                "strictly increasing"
            );
            let late = out.iter().filter(|(o, _)| !*o).count() as u64;
            assert_eq!(late, r.late());
        }
    }
}
