//! Counts: per zone the objects present per class, per line the in/out totals per class.
//! Sent at least every `countsEverySecs` of stream time, and on change, but changes at most
//! every `countsMinSecs`: on a busy scene counts change about once a second, and a message
//! per change would cost more than the events themselves. A change held back goes out when
//! the interval is over (if the counts still differ from the last ones sent), so the last
//! state is never lost, only coalesced.

use std::collections::BTreeMap;

use super::lines::InOut;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountsSnapshot {
    /// Zone -> class -> objects present now (inertia-confirmed members).
    pub zones: BTreeMap<String, BTreeMap<String, u32>>,
    /// Line -> class -> cumulative crossings.
    pub lines: BTreeMap<String, BTreeMap<String, InOut>>,
    /// Stream time they were taken at.
    pub pts_ms: u64,
}

impl CountsSnapshot {
    fn same_counts(&self, other: &CountsSnapshot) -> bool {
        self.zones == other.zones && self.lines == other.lines
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.lines.is_empty()
    }
}

#[derive(Debug)]
pub struct Counts {
    every_ms: u64,
    /// Least stream time between two change-driven counts messages.
    min_ms: u64,
    last: Option<CountsSnapshot>,
}

impl Counts {
    pub fn new(every_ms: u64, min_ms: u64) -> Self {
        Counts {
            every_ms: every_ms.max(1),
            min_ms,
            last: None,
        }
    }

    pub fn set_every_ms(&mut self, every_ms: u64, min_ms: u64) {
        self.every_ms = every_ms.max(1);
        self.min_ms = min_ms;
    }

    /// This frame's counts: `Some` if they should go out (first ones, due, or changed and
    /// the last ones are at least `min_ms` old).
    /// With no zones and no lines configured there is nothing to count and nothing is sent.
    pub fn tick(&mut self, now: CountsSnapshot) -> Option<CountsSnapshot> {
        if now.is_empty() {
            self.last = None;
            return None;
        }
        let send = match &self.last {
            None => true,
            Some(last) => {
                let age = now.pts_ms.saturating_sub(last.pts_ms);
                age >= self.every_ms
                    || (age >= self.min_ms && !last.same_counts(&now))
                    || now.pts_ms < last.pts_ms
            }
        };
        if send {
            self.last = Some(now.clone());
            Some(now)
        } else {
            None
        }
    }

    /// End of stream: counts held back by `min_ms` go out now if they differ from the last
    /// ones sent (nothing later would send them).
    pub fn flush(&mut self, now: CountsSnapshot) -> Option<CountsSnapshot> {
        let changed = self.last.as_ref().is_some_and(|l| !l.same_counts(&now));
        if changed && !now.is_empty() {
            self.last = Some(now.clone());
            Some(now)
        } else {
            None
        }
    }

    /// Forget what was sent: the next tick sends.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(present: u32, pts_ms: u64) -> CountsSnapshot {
        let per_class = BTreeMap::from([("person".to_string(), present)]);
        CountsSnapshot {
            zones: BTreeMap::from([("door".to_string(), per_class)]),
            lines: BTreeMap::new(),
            pts_ms,
        }
    }

    #[test]
    fn first_on_change_and_periodic() {
        let mut c = Counts::new(60_000, 0);
        assert!(c.tick(snap(0, 0)).is_some());
        assert!(c.tick(snap(0, 100)).is_none());
        assert_eq!(c.tick(snap(1, 200)).unwrap().pts_ms, 200);
        assert!(c.tick(snap(1, 300)).is_none());
        assert!(c.tick(snap(1, 60_199)).is_none());
        assert!(c.tick(snap(1, 60_200)).is_some());
        assert!(c.tick(snap(0, 60_300)).is_some());
        c.clear();
        assert!(c.tick(snap(0, 60_400)).is_some());
        // A restarted stream (time going back) sends at once rather than waiting a minute.
        assert!(c.tick(snap(0, 10)).is_some());
    }

    #[test]
    fn changes_are_coalesced_to_the_min_interval() {
        let mut c = Counts::new(60_000, 5_000);
        assert!(c.tick(snap(0, 0)).is_some());
        // Changes inside the interval wait...
        assert!(c.tick(snap(1, 100)).is_none());
        assert!(c.tick(snap(2, 4_999)).is_none());
        // ...and the latest state goes out once it is over.
        assert_eq!(c.tick(snap(3, 5_000)).unwrap().zones["door"]["person"], 3);
        // A change undone within the interval sends nothing.
        assert!(c.tick(snap(4, 6_000)).is_none());
        assert!(c.tick(snap(3, 10_100)).is_none());
        assert!(c.tick(snap(3, 64_999)).is_none());
        assert!(c.tick(snap(3, 65_000)).is_some(), "periodic");
        // End of stream: a held-back change goes out, an unchanged state does not.
        assert!(c.tick(snap(5, 65_100)).is_none());
        assert_eq!(c.flush(snap(5, 65_200)).unwrap().zones["door"]["person"], 5);
        assert!(c.flush(snap(5, 65_300)).is_none());
    }

    #[test]
    fn nothing_configured_nothing_sent() {
        let mut c = Counts::new(1000, 0);
        assert!(c.tick(CountsSnapshot::default()).is_none());
        let mut lines_only = CountsSnapshot::default();
        lines_only.lines.insert("gate".into(), BTreeMap::new());
        assert!(c.tick(lines_only).is_some());
    }
}
