//! The inference stage ending before its sources (the sink's thread died, its workers could
//! not start, a panic): every source's ingest is told to stop, and the pipeline reports
//! itself finished, so nothing keeps decoding into a queue nobody reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Whether the inference stage has ended, and the stop flags of the sources it fed.
#[derive(Debug, Default)]
pub(super) struct StageEnd {
    /// Set and read under the lock, so a source that starts as the stage ends is stopped.
    state: Mutex<(bool, Vec<Weak<AtomicBool>>)>,
}

impl StageEnd {
    /// Registers a source's stop flag; sets it at once when the stage has already ended.
    pub fn watch(&self, stop: &Arc<AtomicBool>) {
        let mut s = self.lock();
        if s.0 {
            stop.store(true, Ordering::SeqCst);
            return;
        }
        s.1.retain(|w| w.strong_count() > 0);
        s.1.push(Arc::downgrade(stop));
    }

    pub fn ended(&self) -> bool {
        self.lock().0
    }

    fn end(&self) {
        let mut s = self.lock();
        s.0 = true;
        for stop in s.1.drain(..).filter_map(|w| w.upgrade()) {
            stop.store(true, Ordering::SeqCst);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Vec<Weak<AtomicBool>>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held by the inference thread: marks the stage ended when dropped, on return and on a
/// panic alike.
pub(super) struct EndGuard(pub Arc<StageEnd>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The inference stage ended while its sources could still send frames.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the inference stage ended before its sources ({0}); the log above says why")]
pub struct InferenceEnded(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_stops_every_watched_source_and_any_that_comes_later() {
        let end = Arc::new(StageEnd::default());
        let (a, b) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        end.watch(&a);
        end.watch(&b);
        drop(b);
        assert!(!end.ended());
        let guard = EndGuard(end.clone());
        let t = std::thread::spawn(move || {
            let _g = guard;
            panic!("inference fault (test)");
        });
        assert!(t.join().is_err());
        assert!(
            end.ended() && a.load(Ordering::SeqCst),
            "a panic ends the stage"
        );
        let late = Arc::new(AtomicBool::new(false));
        end.watch(&late);
        assert!(
            late.load(Ordering::SeqCst),
            "a source that starts after the end stops"
        );
    }
}
