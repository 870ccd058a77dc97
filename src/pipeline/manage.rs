//! Sources joining and leaving a running pipeline: each has its own ingest thread and
//! counters; the inference stage learns of it through the mux before its first frame.

use std::sync::Arc;

use crossbeam_channel::TrySendError;

use super::mux::Join;
use super::sources::{self, SourceHandle, SourceInfo, SourceInput, SourceStats};
use super::Pipeline;
use crate::defaults;
use crate::ingest::{FrameQueue, IngestConfig, IngestError};

impl Pipeline {
    /// Starts one more source; the others keep running untouched. A name already running,
    /// or more than `MAX_SOURCES`, is refused.
    pub fn add_source(&mut self, s: SourceInput) -> Result<(), IngestError> {
        if self.sources.contains_key(&s.name) {
            return Err(IngestError::Init(format!(
                "source '{}' is already running",
                s.name
            )));
        }
        if self.sources.len() >= defaults::MAX_SOURCES {
            return Err(IngestError::Init(format!(
                "at most {} sources per pipeline",
                defaults::MAX_SOURCES
            )));
        }
        let shown = s.message_name.unwrap_or_else(|| s.name.clone());
        self.spawn_source(s.name, Some(shown), s.config, s.max_fps)
    }

    /// `key` names the source in stats and to the caller; `name` in its messages (`None`:
    /// the live settings' `source_name`).
    pub(super) fn spawn_source(
        &mut self,
        key: String,
        name: Option<String>,
        mut config: IngestConfig,
        max_fps: Option<f32>,
    ) -> Result<(), IngestError> {
        let joins = self
            .joins
            .as_ref()
            .ok_or_else(|| IngestError::Init("the pipeline is stopping".into()))?;
        // Every source scales for the one engine: they share the target it updates.
        config.target = self.target.clone();
        let stats = self.source_stats(&key);
        let limit = Arc::new(sources::MaxFps::default());
        limit.set(max_fps);
        // Track ids are per source: each named source keeps its pictures apart. The
        // single source (and the twin's `default`) keep today's folder.
        let own_folder = name.is_some() && key != defaults::DEFAULT_SOURCE;
        let snapshots = self.snapshots.clone().map(|mut s| {
            if own_folder {
                s.root = s.root.join(&key);
            }
            s
        });
        let id = self.next_id;
        self.next_id += 1;
        let (queue, frames) = FrameQueue::bounded(self.frame_queue);
        let info = SourceInfo {
            id,
            key: key.clone(),
            name,
            stats: stats.clone(),
            max_fps: limit.clone(),
            snapshots,
        };
        // The join goes first, so the inference stage knows the source before its frames.
        // Never blocks the caller (the module's control loop): a full join queue means the
        // inference stage is stuck, and the caller retries later.
        joins.try_send(Join { info, frames }).map_err(|e| match e {
            TrySendError::Full(_) => IngestError::Init("the inference stage is busy".into()),
            TrySendError::Disconnected(_) => {
                IngestError::Init("the inference stage has stopped".into())
            }
        })?;
        let handle = SourceHandle::spawn(id, config, stats.ingest.clone(), queue, limit)?;
        // If the inference stage ends, nobody reads this source's queue: it stops.
        self.stage.watch(&handle.stop);
        self.sources.insert(key, handle);
        Ok(())
    }

    /// A source's counters: kept across its restarts, so they stay monotonic.
    fn source_stats(&self, name: &str) -> Arc<SourceStats> {
        let mut all = self.stats.sources.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_string())
            .or_insert_with(|| SourceStats::new(&self.stats.ingest))
            .clone()
    }

    /// Stops one source and waits for its ingest thread; its tracks end, the other sources
    /// do not notice, and its counters stay (a restart under the same name continues
    /// them). `None` when no such source runs.
    pub fn stop_source(&mut self, name: &str) -> Option<Result<(), IngestError>> {
        self.sources.remove(name).map(SourceHandle::join)
    }

    /// Stops one source for good: its ingest thread (when one runs; a source waiting to
    /// retry has none) and its counters go. `None` when no ingest thread ran.
    pub fn remove_source(&mut self, name: &str) -> Option<Result<(), IngestError>> {
        let r = self.stop_source(name);
        self.stats.remove_source(name);
        r
    }

    /// Sources whose ingest ended by itself (end of file, or a failure without retry),
    /// joined and removed, with how they ended. Their counters stay.
    pub fn take_finished(&mut self) -> Vec<(String, Result<(), IngestError>)> {
        let done: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, h)| h.thread.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        done.into_iter()
            .filter_map(|n| self.sources.remove(&n).map(|h| (n, h.join())))
            .collect()
    }

    /// Changes one source's own frame-rate cap, live.
    pub fn set_max_fps(&self, name: &str, max_fps: Option<f32>) {
        if let Some(h) = self.sources.get(name) {
            h.max_fps.set(max_fps);
        }
    }

    pub fn source_names(&self) -> Vec<String> {
        self.sources.keys().cloned().collect()
    }
}
