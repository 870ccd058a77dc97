//! The running pipeline: ingest thread -> inference thread -> sink thread, joined by
//! bounded channels. The engine sits behind an atomic swap so a new model replaces the
//! old one between two frames without stopping the stream.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Sender};

pub mod stats;

mod dispatch;
mod infer;
mod manage;
mod mux;
mod output_mode;
mod rate;
pub mod reorder;
pub mod scene_stage;
pub mod schedule;
pub mod snapshot_stage;
pub mod sources;
mod stage_end;
pub mod tune;

pub use output_mode::OutputMode;

use crate::defaults;
pub use crate::engine::layout::{LayoutFps, LayoutReport};
use crate::engine::{DetectionFilter, Engine, StageTimes};
use crate::ingest::{IngestConfig, IngestError, ScaleTarget};
use crate::message::InferenceMessage;
use crate::publish::Sink;
use infer::{Envelope, InferLoop, Shared};
use mux::{Join, Mux};
use sources::SourceHandle;
pub use sources::{SourceInput, SourceSnapshot};
pub use stage_end::InferenceEnded;
use stage_end::{EndGuard, StageEnd};
pub use stats::{Stats, StatsSnapshot};

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
    /// Sources (by pipeline key: the twin's `sources` key, `default` for `source`) with
    /// zones and lines of their own; every other source runs `scene`.
    pub scenes: BTreeMap<String, Arc<crate::scene::SceneConfig>>,
}

impl LiveSettings {
    /// The scene the source with pipeline key `key` runs: its own, else the shared one.
    pub fn scene_for(&self, key: &str) -> &Arc<crate::scene::SceneConfig> {
        self.scenes.get(key).unwrap_or(&self.scene)
    }
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
            scenes: BTreeMap::new(),
        }
    }
}

pub type EngineSlot = Arc<ArcSwap<Engine>>;

/// Observes every inferred frame (tests, bench, the twin's `snapshot` method).
pub type FrameObserver = Arc<dyn Fn(&InferenceMessage, &StageTimes) + Send + Sync>;

pub struct Pipeline {
    stop: Arc<AtomicBool>,
    /// Running sources by name; each has its own ingest thread.
    sources: BTreeMap<String, SourceHandle>,
    /// How new sources reach the inference stage; dropped when the pipeline winds down.
    joins: Option<Sender<Join>>,
    next_id: u32,
    infer: Option<JoinHandle<()>>,
    /// Set when the inference thread ends; stops the sources it fed.
    stage: Arc<StageEnd>,
    publish: Option<JoinHandle<usize>>,
    frame_queue: usize,
    snapshots: Option<crate::snapshot::SnapshotSettings>,
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
    /// Skip the tracking stage (tracker, scene, snapshots): only `bench --scene-ab` sets it,
    /// to measure what the stage costs the pipeline.
    pub no_scene: bool,
    /// The live view's tap (`--ui`); `None`: no live view.
    pub ui: Option<Arc<crate::ui::Tap>>,
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
            no_scene: false,
            ui: None,
        }
    }
}

/// What a finished pipeline reports.
#[derive(Debug)]
pub struct PipelineReport {
    pub ingest: Result<(), IngestError>,
    /// Whether the inference stage lasted until its sources were done.
    pub inference: Result<(), InferenceEnded>,
    /// Messages the sink could not deliver before the flush timeout.
    pub undelivered: usize,
}

impl Pipeline {
    /// One source, named by `LiveSettings::source_name` and capped by its `max_fps`.
    pub fn start(
        ingest_config: IngestConfig,
        engine: EngineSlot,
        settings: Arc<ArcSwap<LiveSettings>>,
        sink: Box<dyn Sink>,
        options: PipelineOptions,
    ) -> Result<Pipeline, IngestError> {
        let key = settings.load().source_name.clone();
        let target = ingest_config.target.clone();
        let mut p = Pipeline::start_empty(engine, settings, sink, options, target)?;
        p.spawn_source(key, None, ingest_config, None)?;
        Ok(p)
    }

    /// Several sources served by one engine, in fair turns; each has its own ingest thread,
    /// reconnects, counters, tracker, scene and `max_fps`. With snapshots, each source
    /// writes under `<root>/<name>`.
    pub fn start_sources(
        sources: Vec<SourceInput>,
        engine: EngineSlot,
        settings: Arc<ArcSwap<LiveSettings>>,
        sink: Box<dyn Sink>,
        options: PipelineOptions,
    ) -> Result<Pipeline, IngestError> {
        let target = match sources.first() {
            Some(s) => s.config.target.clone(),
            None => Arc::new(ArcSwap::from_pointee(ScaleTarget::from(
                engine.load().input_spec(),
            ))),
        };
        let mut p = Pipeline::start_empty(engine, settings, sink, options, target)?;
        for s in sources {
            if let Err(e) = p.add_source(s) {
                p.stop();
                p.wait();
                return Err(e);
            }
        }
        Ok(p)
    }

    /// The inference and publish threads, with no source yet.
    fn start_empty(
        engine: EngineSlot,
        settings: Arc<ArcSwap<LiveSettings>>,
        mut sink: Box<dyn Sink>,
        options: PipelineOptions,
        target: Arc<ArcSwap<ScaleTarget>>,
    ) -> Result<Pipeline, IngestError> {
        crate::ingest::init()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = options
            .stats
            .clone()
            .unwrap_or_else(|| Stats::new(Arc::new(crate::ingest::IngestStats::default())));
        {
            let e = engine.load();
            let m = &e.model().manifest;
            stats.set_model(&m.name, &m.version, e.backend_name());
        }
        // A bad tracker or snapshot folder fails the start, before any thread runs.
        crate::track::by_name(&options.tracker_name, options.tracker.clone())
            .map_err(|e| IngestError::Init(e.to_string()))?;
        let opened = match &options.snapshots {
            Some(s) => {
                let snap = crate::snapshot::Snapshotter::open(s)
                    .map_err(|e| IngestError::Init(e.to_string()))?;
                let stage = snapshot_stage::SnapshotStage::start(snap)
                    .map_err(|e| IngestError::Init(e.to_string()))?;
                stats.set_snapshots(stage.status());
                Some((s.root.clone(), stage))
            }
            None => None,
        };
        if let Some(ui) = &options.ui {
            ui.attach(stats.clone(), settings.load().scene.clone());
        }
        let low_score = options.tracker.low_score;
        let (joins_tx, joins_rx) = bounded::<Join>(defaults::MAX_SOURCES);
        let (msg_tx, msg_rx) = bounded::<Envelope>(options.message_queue.max(1));
        let latest = Arc::new(Mutex::new(None));

        let factory = sources::TrackingFactory {
            tracker_name: options.tracker_name.clone(),
            tracker: options.tracker.clone(),
            opened,
        };
        let frames = Mux::new(joins_rx)
            .spawn()
            .map_err(|e| IngestError::Init(e.to_string()))?;
        let infer = InferLoop::new(
            frames,
            msg_tx,
            infer::Tracking {
                factory,
                low_score,
                enabled: !options.no_scene,
            },
            Shared {
                engine,
                settings,
                stats: stats.clone(),
                latest: latest.clone(),
                target: target.clone(),
                observer: options.observer.clone(),
                ui: options.ui.clone(),
            },
        );
        let stage = Arc::new(StageEnd::default());
        let guard = EndGuard(stage.clone());
        let infer_handle = std::thread::Builder::new()
            .name("infer".into())
            .spawn(move || {
                let _ended = guard;
                infer.run()
            })
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
                    if let (true, Some(s)) = (ok, &env.source) {
                        s.messages.fetch_add(1, Ordering::Relaxed);
                    }
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
            sources: BTreeMap::new(),
            joins: Some(joins_tx),
            next_id: 0,
            infer: Some(infer_handle),
            stage,
            publish: Some(publish_handle),
            frame_queue: options.frame_queue,
            snapshots: options.snapshots.clone(),
            stats,
            target,
            latest,
        })
    }

    /// Asks every stage to finish; queued frames are inferred and queued messages flushed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.sources.values() {
            h.stop.store(true, Ordering::SeqCst);
        }
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// True when every source has ended (or none runs), or the inference stage has: then
    /// nothing more comes out, and its sources were told to stop.
    pub fn is_finished(&self) -> bool {
        self.inference_ended() || self.sources.values().all(|h| h.thread.is_finished())
    }

    /// True when the inference thread has ended. Before [`Pipeline::wait`] that is a fault
    /// (it runs until every source is done and no more can join): restart the pipeline.
    pub fn inference_ended(&self) -> bool {
        self.stage.ended()
    }

    /// Waits for all stages to end (after `stop`, or at the end of every file).
    pub fn wait(mut self) -> PipelineReport {
        let mut ingest = Ok(());
        for (_, h) in std::mem::take(&mut self.sources) {
            // Not a stop: a file still playing finishes when every source has.
            if let Err(e) = h
                .thread
                .join()
                .unwrap_or_else(|_| Err(IngestError::Init("ingest thread panicked".into())))
            {
                if ingest.is_ok() {
                    ingest = Err(e);
                }
            }
        }
        // Ended while sources could still join: nothing made it stop but a fault.
        let early = self.stage.ended();
        // No source can join any more: the inference stage ends once all are drained.
        self.joins = None;
        let panicked = self.infer.take().is_some_and(|h| h.join().is_err());
        let inference = match (panicked, early) {
            (true, _) => Err(InferenceEnded("it panicked")),
            (false, true) => Err(InferenceEnded("it stopped early")),
            (false, false) => Ok(()),
        };
        let undelivered = self.publish.take().and_then(|h| h.join().ok()).unwrap_or(0);
        PipelineReport {
            ingest,
            inference,
            undelivered,
        }
    }
}
