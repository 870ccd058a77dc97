//! Supervision of the module's sources: each ends, fails, restarts and is added or removed
//! on its own; only a new snapshot container (or a pipeline that could not start) restarts
//! them all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::apply::Plan;
use super::Module;
use crate::defaults;
use crate::ingest::SourceSpec;

impl Module {
    /// Stops everything and starts again with the current sources.
    pub(super) fn restart_source(&mut self) {
        if let Some(p) = self.pipeline.take() {
            p.stop();
            p.wait();
        }
        self.restart_source_at = None;
        if let Err(e) = self.start_pipeline() {
            tracing::error!(error = %e, "cannot start the sources; retrying");
            self.restart_source_at = Some(Instant::now() + defaults::SOURCE_RETRY);
        }
    }

    /// Carries out a plan's source changes, touching only the sources it names.
    pub(super) fn apply_sources(&mut self, plan: &Plan, specs: BTreeMap<String, SourceSpec>) {
        let renamed: Vec<String> = specs
            .iter()
            .filter(|(n, s)| self.sources.get(*n).is_some_and(|o| o != *s))
            .map(|(n, _)| n.clone())
            .collect();
        self.sources = specs;
        // Removed sources go first, whatever else the plan does: a full restart below
        // would otherwise leave their counters in stats for good.
        self.remove_sources(&plan.sources.stop);
        if plan.restart_all || self.pipeline.is_none() {
            tracing::info!(sources = ?self.sources.keys().collect::<Vec<_>>(), "restarting every source");
            return self.restart_source();
        }
        let c = &plan.sources;
        let mut restart: Vec<String> = c.restart.clone();
        for n in renamed {
            if !restart.contains(&n) {
                restart.push(n);
            }
        }
        for name in &restart {
            tracing::info!(source = %name, "restarting source");
            self.retry_at.remove(name);
            if let Some(p) = self.pipeline.as_mut() {
                // Counters kept: they stay monotonic across the restart.
                p.stop_source(name);
            }
        }
        for name in restart.iter().chain(&c.start) {
            tracing::info!(source = %name, "starting source");
            self.add_source(name);
        }
        if let Some(p) = &self.pipeline {
            for (name, s) in super::sources::effective(&plan.config) {
                p.set_max_fps(&name, s.max_fps.map(|f| f as f32));
            }
        }
    }

    /// Stops the sources the twin removed and forgets their counters, running or waiting
    /// to retry; reported stats delete them with a null (`gone_sources`).
    fn remove_sources(&mut self, names: &[String]) {
        for name in names {
            tracing::info!(source = %name, "stopping source");
            self.gone_sources.retain(|n| n != name);
            self.gone_sources.push(name.clone());
            self.retry_at.remove(name);
            if let Some(p) = self.pipeline.as_mut() {
                p.stop_source(name);
            }
            // The module's stats are the pipeline's too, and outlive it: dropped here once,
            // with or without a pipeline (it could not start).
            self.stats.remove_source(name);
        }
        let excess = self
            .gone_sources
            .len()
            .saturating_sub(defaults::MAX_SOURCES * 4);
        self.gone_sources.drain(..excess);
    }

    fn add_source(&mut self, name: &str) {
        let Some(input) = self.source_input(name) else {
            return;
        };
        let Some(p) = self.pipeline.as_mut() else {
            return;
        };
        if let Err(e) = p.add_source(input) {
            tracing::error!(source = %name, error = %e, "cannot start the source; retrying");
            self.retry_at
                .insert(name.to_string(), Instant::now() + defaults::SOURCE_RETRY);
        }
    }

    /// Files loop in module mode (a module has nothing else to do); failures retry, each
    /// source on its own.
    pub(super) fn supervise_sources(&mut self) {
        if let Some(at) = self.restart_source_at {
            if Instant::now() >= at {
                self.restart_source_at = None;
                if let Err(e) = self.start_pipeline() {
                    tracing::error!(error = %e, "cannot restart the sources");
                    self.restart_source_at = Some(Instant::now() + defaults::SOURCE_RETRY);
                }
            }
            return;
        }
        if self.pipeline.as_ref().is_some_and(|p| p.inference_ended()) {
            self.restart_after_fault();
            return;
        }
        let Some(p) = self.pipeline.as_mut() else {
            return;
        };
        for (name, ended) in p.take_finished() {
            let delay = match ended {
                Ok(()) => Duration::ZERO,
                Err(e) => {
                    tracing::error!(source = %name, error = %e, "source failed; retrying");
                    defaults::SOURCE_RETRY
                }
            };
            self.retry_at.insert(name, Instant::now() + delay);
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .retry_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.retry_at.remove(&name);
            if self.sources.contains_key(&name) {
                self.add_source(&name);
            }
        }
    }

    /// The inference stage ended on its own (a fault: the log says which): the sources
    /// were told to stop; the whole pipeline starts again after the usual wait.
    fn restart_after_fault(&mut self) {
        if let Some(p) = self.pipeline.take() {
            p.stop();
            if let Err(e) = p.wait().inference {
                tracing::error!(error = %e, "the pipeline stopped; restarting it");
            }
        }
        self.restart_source_at = Some(Instant::now() + defaults::SOURCE_RETRY);
    }
}
