//! Track ids: `<start-unix-ms>-<n>`, unique per tracker and run.
//!
//! The stamp is taken when the tracker starts; `reset` takes a new one, strictly greater than
//! the last, so numbering restarts at 1 without ever repeating an id (even within one ms).

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq)]
pub struct IdGen {
    stamp: u64,
    next: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGen {
    pub fn new() -> Self {
        Self::starting_at(now_ms())
    }

    /// A generator with a given start stamp (tests, replays).
    pub fn starting_at(stamp_ms: u64) -> Self {
        IdGen {
            stamp: stamp_ms,
            next: 1,
        }
    }

    pub fn next_id(&mut self) -> String {
        let id = format!("{}-{}", self.stamp, self.next);
        self.next += 1;
        id
    }

    /// Restarts numbering under a new, strictly later stamp.
    pub fn reset(&mut self) {
        self.stamp = now_ms().max(self.stamp + 1);
        self.next = 1;
    }

    pub fn stamp(&self) -> u64 {
        self.stamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_unique_across_resets_even_in_one_millisecond() {
        // A stamp far in the future: reset cannot rely on the clock having moved on.
        let mut g = IdGen::starting_at(u64::MAX / 2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            for _ in 0..3 {
                assert!(seen.insert(g.next_id()));
            }
            g.reset();
        }
        assert_eq!(seen.len(), 15);
        assert!(seen.contains(&format!("{}-1", u64::MAX / 2 + 1)));
    }

    #[test]
    fn format() {
        let mut g = IdGen::starting_at(1700000000000);
        assert_eq!(g.next_id(), "1700000000000-1");
        assert_eq!(g.next_id(), "1700000000000-2");
        let now = now_ms();
        g.reset();
        assert!(g.stamp() >= now);
        assert_eq!(g.next_id(), format!("{}-1", g.stamp()));
    }
}
