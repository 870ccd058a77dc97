//! Per-source parts of a pipeline: what a source is called, its counters, its own ingest
//! thread, and (in the inference stage) its own tracker, scene and rate limit. Sources
//! share the engine; nothing else.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;

use super::rate::RateLimit;
use super::scene_stage::SceneStage;
use super::snapshot_stage::SnapshotStage;
use crate::ingest::{FrameQueue, Ingest, IngestConfig, IngestError, IngestStats};
use crate::snapshot::{SnapshotSettings, Snapshotter};

/// One source to run: its name (in stats, /metrics and the twin), its ingest and its own
/// frame-rate cap (`None`: the live settings' `max_fps`).
#[derive(Debug, Clone)]
pub struct SourceInput {
    pub name: String,
    /// The `source` in its messages, when not `name` (the twin's `default` source keeps
    /// the name derived from its uri, as a single source always had).
    pub message_name: Option<String>,
    pub config: IngestConfig,
    pub max_fps: Option<f32>,
}

/// What the inference stage knows of a source.
#[derive(Clone)]
pub(super) struct SourceInfo {
    pub id: u32,
    /// The pipeline's key for it (`LiveSettings::scene_for` picks its zones by it).
    pub key: String,
    /// `None`: follow `LiveSettings::source_name` (the single-source `Pipeline::start`).
    pub name: Option<String>,
    pub stats: Arc<SourceStats>,
    pub max_fps: Arc<MaxFps>,
    pub snapshots: Option<SnapshotSettings>,
}

/// A source's own `maxFps`, changed live; 0 bits mean "none".
#[derive(Debug, Default)]
pub struct MaxFps(AtomicU32);

impl MaxFps {
    pub fn set(&self, v: Option<f32>) {
        let bits = v
            .filter(|f| *f > 0.0 && f.is_finite())
            .map_or(0, f32::to_bits);
        self.0.store(bits, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<f32> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            b => Some(f32::from_bits(b)),
        }
    }
}

/// A source's counters. Its ingest counters also count in the pipeline's totals
/// (`IngestStats::child_of`), so totals stay monotonic when a source goes away.
#[derive(Debug)]
pub struct SourceStats {
    pub ingest: Arc<IngestStats>,
    pub frames_inferred: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub messages: AtomicU64,
    recent: super::stats::RecentRate,
}

/// A source's line in reported stats (`stats.sources.<name>`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceSnapshot {
    pub fps: f64,
    pub frames_in: u64,
    pub frames_inferred: u64,
    pub dropped: u64,
    pub skipped: u64,
    pub messages: u64,
    pub restarts: u64,
    pub connected: bool,
}

impl SourceStats {
    pub fn new(total: &Arc<IngestStats>) -> Arc<SourceStats> {
        Arc::new(SourceStats {
            ingest: Arc::new(IngestStats::child_of(total.clone())),
            frames_inferred: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            recent: Default::default(),
        })
    }

    pub fn record_inferred(&self) {
        self.frames_inferred.fetch_add(1, Ordering::Relaxed);
        self.recent.record();
    }

    pub fn fps(&self) -> f64 {
        self.recent.fps()
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        let i = &self.ingest;
        SourceSnapshot {
            fps: (self.fps() * 100.0).round() / 100.0,
            frames_in: i.frames_in.load(Ordering::Relaxed),
            frames_inferred: self.frames_inferred.load(Ordering::Relaxed),
            dropped: i.frames_dropped.load(Ordering::Relaxed),
            skipped: self.frames_skipped.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            restarts: i.restarts.load(Ordering::Relaxed),
            connected: i.connected.load(Ordering::Relaxed),
        }
    }
}

/// The sources a pipeline runs now, by name, for stats and /metrics.
pub type SourceStatsMap = Mutex<BTreeMap<String, Arc<SourceStats>>>;

/// Prometheus text for per-source counters, labelled `source`.
pub fn prometheus_text(sources: &BTreeMap<String, Arc<SourceStats>>) -> String {
    if sources.is_empty() {
        return String::new();
    }
    type Get = fn(&SourceSnapshot) -> u64;
    let families: [(&str, &str, &str, Get); 6] = [
        (
            "edgelens_source_frames_in_total",
            "counter",
            "Frames received, per source",
            |s| s.frames_in,
        ),
        (
            "edgelens_source_frames_dropped_total",
            "counter",
            "Frames dropped while inference was busy, per source",
            |s| s.dropped,
        ),
        (
            "edgelens_source_frames_inferred_total",
            "counter",
            "Frames run through the model, per source",
            |s| s.frames_inferred,
        ),
        (
            "edgelens_source_frames_skipped_total",
            "counter",
            "Frames skipped by maxFps, per source",
            |s| s.skipped,
        ),
        (
            "edgelens_source_reconnects_total",
            "counter",
            "Times the source pipeline was rebuilt, per source",
            |s| s.restarts,
        ),
        (
            "edgelens_source_connected",
            "gauge",
            "1 while the source delivers",
            |s| u64::from(s.connected),
        ),
    ];
    let snaps: Vec<(String, SourceSnapshot)> = sources
        .iter()
        .map(|(n, s)| (label(n), s.snapshot()))
        .collect();
    let mut out = String::new();
    for (name, kind, help, get) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (n, s) in &snaps {
            out.push_str(&format!("{name}{{source=\"{n}\"}} {}\n", get(s)));
        }
    }
    out
}

/// A label value per the exposition format: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A running source: its ingest thread and what stops it.
pub(super) struct SourceHandle {
    pub stop: Arc<AtomicBool>,
    pub thread: JoinHandle<Result<(), IngestError>>,
    pub max_fps: Arc<MaxFps>,
}

impl SourceHandle {
    /// Starts the source's ingest thread, filling `queue`.
    pub fn spawn(
        id: u32,
        config: IngestConfig,
        stats: Arc<IngestStats>,
        queue: FrameQueue,
        max_fps: Arc<MaxFps>,
    ) -> Result<SourceHandle, IngestError> {
        let stop = Arc::new(AtomicBool::new(false));
        let ingest = Ingest::new(config, stats, stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("ingest-{id}"))
            .spawn(move || {
                let r = ingest.run(&queue);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "source stopped");
                }
                r
            })
            .map_err(|e| IngestError::Init(e.to_string()))?;
        Ok(SourceHandle {
            stop,
            thread,
            max_fps,
        })
    }

    pub fn join(self) -> Result<(), IngestError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(IngestError::Init("ingest thread panicked".into())))
    }
}

/// How the inference stage makes a source's tracking state.
pub(super) struct TrackingFactory {
    pub tracker_name: String,
    pub tracker: crate::track::TrackerConfig,
    /// The snapshot store opened when the pipeline started (so a bad folder fails the
    /// start); the first source that writes there takes it.
    pub opened: Option<(std::path::PathBuf, SnapshotStage)>,
}

/// A source's state in the inference stage.
pub(super) struct PerSource {
    pub info: SourceInfo,
    pub scene: SceneStage,
    pub rate: RateLimit,
}

impl TrackingFactory {
    /// A fresh tracker and scene for a source. The tracker name was checked when the
    /// pipeline started; a snapshot folder that cannot open costs only snapshots.
    pub fn make(
        &mut self,
        info: SourceInfo,
        scene: Arc<crate::scene::SceneConfig>,
    ) -> Result<PerSource, String> {
        let tracker = crate::track::by_name(&self.tracker_name, self.tracker.clone())
            .map_err(|e| e.to_string())?;
        let pre = match (&self.opened, &info.snapshots) {
            (Some((root, _)), Some(s)) if *root == s.root => self.opened.take().map(|o| o.1),
            _ => None,
        };
        let snapshots = pre.or_else(|| {
            let s = info.snapshots.as_ref()?;
            Snapshotter::open(s)
                .map_err(|e| e.to_string())
                .and_then(|snap| SnapshotStage::start(snap).map_err(|e| e.to_string()))
                .map_err(|e| tracing::error!(error = %e, "snapshots off for this source"))
                .ok()
        });
        Ok(PerSource {
            scene: SceneStage::new(tracker, scene, snapshots),
            info,
            rate: RateLimit::default(),
        })
    }
}

impl PerSource {
    /// The name in this source's messages.
    pub fn name<'a>(&'a self, live: &'a super::LiveSettings) -> &'a str {
        self.info.name.as_deref().unwrap_or(&live.source_name)
    }
}
