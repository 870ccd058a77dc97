//! The running pipeline: ingest thread -> inference thread -> sink thread, joined by
//! bounded channels. The engine sits behind an atomic swap so a new model replaces the
//! old one between two frames without stopping the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::bounded;

pub mod stats;

mod dispatch;
mod infer;
mod rate;
pub mod reorder;
pub mod scene_stage;
pub mod tune;

use crate::defaults;
pub use crate::engine::layout::{LayoutFps, LayoutReport};
use crate::engine::{DetectionFilter, Engine, StageTimes};
use crate::ingest::{FrameQueue, Ingest, IngestConfig, IngestError, ScaleTarget};
use crate::message::InferenceMessage;
use crate::publish::Sink;
use infer::{Envelope, InferLoop, Shared};
pub use stats::{Stats, StatsSnapshot};

/// What the pipeline publishes: per-frame detections, scene events and counts, or both.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// One message per frame with detections (AVA schema, `entity.id` = track id).
    Frames,
    /// Track events (`new`/`update`/`end`) and counts only: what fits a hub's quota.
    #[default]
    Events,
    Both,
}

impl OutputMode {
    pub fn frames(self) -> bool {
        matches!(self, OutputMode::Frames | OutputMode::Both)
    }

    pub fn events(self) -> bool {
        matches!(self, OutputMode::Events | OutputMode::Both)
    }
}

impl std::str::FromStr for OutputMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "frames" => Ok(OutputMode::Frames),
            "events" => Ok(OutputMode::Events),
            "both" => Ok(OutputMode::Both),
            _ => Err(format!(
                "unknown output mode '{s}'; use frames, events or both"
            )),
        }
    }
}

/// Settings that change live without touching the model (twin `detection`, `source.maxFps`,
/// `output.mode`, zones and lines).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    pub filter: DetectionFilter,
    pub max_fps: Option<f32>,
    /// Extra message properties (EdgeHub routes filter on them).
    pub source_name: String,
    pub output_mode: OutputMode,
    /// Zones, lines and event knobs; a new `Arc` (pointer compare) applies them live.
    pub scene: Arc<crate::scene::SceneConfig>,
}

/// `Default` keeps today's per-frame output (`Frames`), unlike [`OutputMode::default`]:
/// tests and tools that build settings by hand expect frame messages.
impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            filter: DetectionFilter::default(),
            max_fps: None,
            source_name: String::new(),
            output_mode: OutputMode::Frames,
            scene: Arc::new(crate::scene::SceneConfig::default()),
        }
    }
}

pub type EngineSlot = Arc<ArcSwap<Engine>>;

/// Observes every inferred frame (tests, bench, the twin's `snapshot` method).
pub type FrameObserver = Arc<dyn Fn(&InferenceMessage, &StageTimes) + Send + Sync>;

pub struct Pipeline {
    stop: Arc<AtomicBool>,
    ingest: Option<JoinHandle<Result<(), IngestError>>>,
    infer: Option<JoinHandle<()>>,
    publish: Option<JoinHandle<usize>>,
    pub stats: Arc<Stats>,
    pub target: Arc<ArcSwap<ScaleTarget>>,
    pub latest: Arc<Mutex<Option<InferenceMessage>>>,
}

pub struct PipelineOptions {
    pub frame_queue: usize,
    pub message_queue: usize,
    /// How long shutdown waits for the sink to deliver what is queued.
    pub flush_timeout: Duration,
    pub observer: Option<FrameObserver>,
    /// Counters to continue (module mode keeps one set across source restarts, so
    /// /metrics stays current and monotonic); `None` starts fresh ones.
    pub stats: Option<Arc<Stats>>,
    /// Tracker by registry name (`track::names()`), and its tuning.
    pub tracker_name: String,
    pub tracker: crate::track::TrackerConfig,
    /// Where best snapshots go; `None`: no snapshots.
    pub snapshots: Option<crate::snapshot::SnapshotSettings>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            frame_queue: defaults::FRAME_QUEUE,
            message_queue: defaults::MESSAGE_QUEUE,
            flush_timeout: defaults::FLUSH_TIMEOUT,
            observer: None,
            stats: None,
            tracker_name: defaults::TRACKER.to_string(),
            tracker: crate::track::TrackerConfig::default(),
            snapshots: None,
        }
    }
}

/// What a finished pipeline reports.
#[derive(Debug)]
pub struct PipelineReport {
    pub ingest: Result<(), IngestError>,
    /// Messages the sink could not deliver before the flush timeout.
    pub undelivered: usize,
}

impl Pipeline {
    pub fn start(
        ingest_config: IngestConfig,
        engine: EngineSlot,
        settings: Arc<ArcSwap<LiveSettings>>,
        mut sink: Box<dyn Sink>,
        options: PipelineOptions,
    ) -> Result<Pipeline, IngestError> {
        crate::ingest::init()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = options
            .stats
            .clone()
            .unwrap_or_else(|| Stats::new(Arc::new(crate::ingest::IngestStats::default())));
        let ingest_stats = stats.ingest.clone();
        {
            let e = engine.load();
            let m = &e.model().manifest;
            stats.set_model(&m.name, &m.version, e.backend_name());
        }
        // A bad tracker or snapshot folder fails the start, before any thread runs.
        let tracker = crate::track::by_name(&options.tracker_name, options.tracker.clone())
            .map_err(|e| IngestError::Init(e.to_string()))?;
        let snapshots = match &options.snapshots {
            Some(s) => Some(
                crate::snapshot::Snapshotter::open(s)
                    .map_err(|e| IngestError::Init(e.to_string()))?,
            ),
            None => None,
        };
        let low_score = options.tracker.low_score;
        let target = ingest_config.target.clone();
        let (frame_queue, frame_rx) = FrameQueue::bounded(options.frame_queue);
        let (msg_tx, msg_rx) = bounded::<Envelope>(options.message_queue.max(1));
        let latest = Arc::new(Mutex::new(None));

        let ingest = Ingest::new(ingest_config, ingest_stats, stop.clone());
        let ingest_handle = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                let r = ingest.run(&frame_queue);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "source stopped");
                }
                r
            })
            .map_err(|e| IngestError::Init(e.to_string()))?;

        let scene = scene_stage::SceneStage::new(tracker, settings.load().scene.clone(), snapshots);
        let infer = InferLoop::new(
            frame_rx,
            msg_tx,
            infer::Tracking { scene, low_score },
            Shared {
                engine,
                settings,
                stats: stats.clone(),
                latest: latest.clone(),
                target: target.clone(),
                observer: options.observer.clone(),
            },
        );
        let infer_handle = std::thread::Builder::new()
            .name("infer".into())
            .spawn(move || infer.run())
            .map_err(|e| IngestError::Init(e.to_string()))?;

        let sink_stats = stats.clone();
        let flush_timeout = options.flush_timeout;
        let publish_handle = std::thread::Builder::new()
            .name("publish".into())
            .spawn(move || {
                while let Ok(env) = msg_rx.recv() {
                    let ok = match sink.send(env.out) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, sink = sink.name(), "message not published");
                            false
                        }
                    };
                    sink_stats.record_delivery(env.received.elapsed(), ok);
                    sink_stats.set_outbox_dropped(sink.stats().dropped);
                }
                let left = sink.flush(flush_timeout);
                if left > 0 {
                    tracing::warn!(
                        undelivered = left,
                        "shutdown: messages left undelivered after flush timeout"
                    );
                }
                left
            })
            .map_err(|e| IngestError::Init(e.to_string()))?;

        Ok(Pipeline {
            stop,
            ingest: Some(ingest_handle),
            infer: Some(infer_handle),
            publish: Some(publish_handle),
            stats,
            target,
            latest,
        })
    }

    /// Asks every stage to finish; queued frames are inferred and queued messages flushed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.ingest.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for all stages to end (after `stop`, or at the end of a file).
    pub fn wait(mut self) -> PipelineReport {
        let ingest = match self.ingest.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(IngestError::Init("ingest thread panicked".into())),
            None => Ok(()),
        };
        if let Some(h) = self.infer.take() {
            let _ = h.join();
        }
        let undelivered = self.publish.take().and_then(|h| h.join().ok()).unwrap_or(0);
        PipelineReport {
            ingest,
            undelivered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_mode_parses_and_serializes_lowercase() {
        for (s, m) in [
            ("frames", OutputMode::Frames),
            ("events", OutputMode::Events),
            ("both", OutputMode::Both),
        ] {
            assert_eq!(s.parse::<OutputMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(s));
        }
        assert!("all".parse::<OutputMode>().unwrap_err().contains("frames"));
        assert_eq!(OutputMode::default(), OutputMode::Events);
        assert!(OutputMode::Both.frames() && OutputMode::Both.events());
        assert!(!OutputMode::Frames.events() && !OutputMode::Events.frames());
        // Hand-built settings keep today's per-frame output.
        assert_eq!(LiveSettings::default().output_mode, OutputMode::Frames);
    }
}
