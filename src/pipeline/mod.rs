//! The running pipeline: ingest thread -> inference thread -> sink thread, joined by
//! bounded channels. The engine sits behind an atomic swap so a new model replaces the
//! old one between two frames without stopping the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, RecvTimeoutError};

pub mod stats;

use crate::engine::{DetectionFilter, Engine, StageTimes};
use crate::ingest::{Frame, FrameSink, Ingest, IngestConfig, IngestError, InputTarget};
use crate::message::{FrameInfo, InferenceMessage, ModelInfo};
use crate::publish::{Outgoing, Sink};
pub use stats::{Stats, StatsSnapshot};

/// Settings that change live without touching the model (twin `detection`, `source.maxFps`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSettings {
    pub filter: DetectionFilter,
    pub max_fps: Option<f32>,
    /// Extra message properties (EdgeHub routes filter on them).
    pub source_name: String,
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
    pub target: Arc<ArcSwap<InputTarget>>,
    pub latest: Arc<Mutex<Option<InferenceMessage>>>,
}

pub struct PipelineOptions {
    pub frame_queue: usize,
    pub message_queue: usize,
    /// How long shutdown waits for the sink to deliver what is queued.
    pub flush_timeout: Duration,
    pub observer: Option<FrameObserver>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            frame_queue: 2,
            message_queue: 1024,
            flush_timeout: Duration::from_secs(3),
            observer: None,
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

struct Envelope {
    out: Outgoing,
    received: Instant,
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
        let ingest_stats = Arc::new(crate::ingest::IngestStats::default());
        let stats = Stats::new(ingest_stats.clone());
        {
            let e = engine.load();
            let m = &e.model().manifest;
            stats.set_model(&m.name, &m.version, e.backend_name());
        }
        let target = ingest_config.target.clone();
        let (frame_tx, frame_rx) = bounded::<Frame>(options.frame_queue.max(1));
        let (msg_tx, msg_rx) = bounded::<Envelope>(options.message_queue.max(1));
        let latest = Arc::new(Mutex::new(None));

        let frame_sink = FrameSink {
            tx: frame_tx,
            drain: frame_rx.clone(),
        };
        let ingest = Ingest::new(ingest_config, ingest_stats, stop.clone());
        let ingest_handle = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                let r = ingest.run(&frame_sink);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "source stopped");
                }
                r
            })
            .map_err(|e| IngestError::Init(e.to_string()))?;

        let infer_stats = stats.clone();
        let infer_latest = latest.clone();
        let infer_target = target.clone();
        let observer = options.observer.clone();
        let infer_handle = std::thread::Builder::new()
            .name("infer".into())
            .spawn(move || {
                infer_loop(
                    frame_rx,
                    msg_tx,
                    engine,
                    settings,
                    infer_stats,
                    infer_latest,
                    infer_target,
                    observer,
                )
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

#[allow(clippy::too_many_arguments)]
fn infer_loop(
    frames: crossbeam_channel::Receiver<Frame>,
    messages: crossbeam_channel::Sender<Envelope>,
    engine: EngineSlot,
    settings: Arc<ArcSwap<LiveSettings>>,
    stats: Arc<Stats>,
    latest: Arc<Mutex<Option<InferenceMessage>>>,
    target: Arc<ArcSwap<InputTarget>>,
    observer: Option<FrameObserver>,
) {
    let mut last_pts: Option<u64> = None;
    let mut last_model: Option<(String, String)> = None;
    loop {
        let frame = match frames.recv_timeout(Duration::from_millis(200)) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let live = settings.load();
        let pts = frame
            .pts_ms
            .unwrap_or_else(|| frame.received.elapsed().as_millis() as u64);
        if let (Some(max_fps), Some(prev)) = (live.max_fps, last_pts) {
            if max_fps > 0.0 && (pts.saturating_sub(prev) as f32) < 1000.0 / max_fps - 0.5 {
                stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        last_pts = Some(pts);
        // One load per frame: a swap lands between frames, never inside one.
        let engine = engine.load_full();
        let manifest = &engine.model().manifest;
        let model_key = (manifest.name.clone(), manifest.version.clone());
        if last_model.as_ref() != Some(&model_key) {
            stats.set_model(&manifest.name, &manifest.version, engine.backend_name());
            let wanted = InputTarget::from(engine.input_spec());
            if **target.load() != wanted {
                target.store(Arc::new(wanted));
            }
            last_model = Some(model_key);
        }
        let result = engine.detect_frame(&frame, &live.filter);
        let (dets, times) = match result {
            Ok(r) => r,
            Err(e) => {
                stats.infer_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, frame = frame.seq, "inference failed; frame skipped");
                continue;
            }
        };
        stats.record_inference(&manifest.name, engine.backend_name(), &times);
        let msg = InferenceMessage::new(
            &live.source_name,
            FrameInfo {
                pts_ms: pts,
                width: frame.width,
                height: frame.height,
            },
            ModelInfo {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
            },
            &dets,
        );
        if let Some(obs) = &observer {
            obs(&msg, &times);
        }
        if let Ok(mut l) = latest.lock() {
            *l = Some(msg.clone());
        }
        // Frames with nothing in them send nothing.
        if msg.inferences.is_empty() {
            continue;
        }
        let body = match serde_json::to_vec(&msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize message");
                continue;
            }
        };
        let out = Outgoing {
            body,
            properties: vec![
                ("source".into(), live.source_name.clone()),
                ("model".into(), manifest.name.clone()),
                ("modelVersion".into(), manifest.version.clone()),
            ],
        };
        if messages
            .send(Envelope {
                out,
                received: frame.received,
            })
            .is_err()
        {
            break;
        }
    }
}
