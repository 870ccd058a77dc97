//! The inference stage, read top to bottom: frame -> engine -> (tracker) -> message -> sink.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::rate::RateLimit;
use super::{EngineSlot, FrameObserver, LiveSettings, Stats};
use crate::engine::{Detection, Engine, StageTimes};
use crate::ingest::{Frame, ScaleTarget};
use crate::message::{FrameInfo, InferenceMessage, ModelInfo};
use crate::publish::OutMessage;

/// A message on its way to the sink, with the time its frame arrived (for latency).
pub(super) struct Envelope {
    pub out: OutMessage,
    pub received: Instant,
}

/// What the inference stage shares with the rest of the pipeline.
pub(super) struct Shared {
    pub engine: EngineSlot,
    pub settings: Arc<ArcSwap<LiveSettings>>,
    pub stats: Arc<Stats>,
    pub latest: Arc<Mutex<Option<InferenceMessage>>>,
    /// What ingest scales frames to; updated when a model with another input swaps in.
    pub target: Arc<ArcSwap<ScaleTarget>>,
    pub observer: Option<FrameObserver>,
}

pub(super) struct InferLoop {
    pub frames: Receiver<Frame>,
    pub messages: Sender<Envelope>,
    pub shared: Shared,
    rate: RateLimit,
    model: Option<(String, String)>,
}

impl InferLoop {
    pub fn new(frames: Receiver<Frame>, messages: Sender<Envelope>, shared: Shared) -> Self {
        InferLoop {
            frames,
            messages,
            shared,
            rate: RateLimit::default(),
            model: None,
        }
    }

    /// Runs until ingest ends (its channel closes) or the sink goes away.
    pub fn run(mut self) {
        while let Some(frame) = self.next_frame() {
            let live = self.shared.settings.load_full();
            if !self.rate.admit(pts_ms(&frame), live.max_fps) {
                self.shared
                    .stats
                    .frames_skipped
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let engine = self.engine_for_frame();
            let Some((detections, times)) = self.detect(&engine, &frame, &live) else {
                continue;
            };
            let msg = self.message(&engine, &frame, &live, &detections);
            if let Some(obs) = &self.shared.observer {
                obs(&msg, &times);
            }
            if let Ok(mut l) = self.shared.latest.lock() {
                *l = Some(msg.clone());
            }
            if !self.publish(&msg, &engine, &live, frame.received) {
                break;
            }
        }
    }

    fn next_frame(&self) -> Option<Frame> {
        loop {
            match self.frames.recv_timeout(Duration::from_millis(200)) {
                Ok(f) => return Some(f),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// One load per frame: a swap lands between frames, never inside one. A new model's
    /// input size goes to ingest, which scales the next frames for it.
    fn engine_for_frame(&mut self) -> Arc<Engine> {
        let engine = self.shared.engine.load_full();
        let m = &engine.model().manifest;
        let key = (m.name.clone(), m.version.clone());
        if self.model.as_ref() != Some(&key) {
            self.shared
                .stats
                .set_model(&m.name, &m.version, engine.backend_name());
            let wanted = ScaleTarget::from(engine.input_spec());
            if **self.shared.target.load() != wanted {
                self.shared.target.store(Arc::new(wanted));
            }
            self.model = Some(key);
        }
        engine
    }

    fn detect(
        &self,
        engine: &Engine,
        frame: &Frame,
        live: &LiveSettings,
    ) -> Option<(Vec<Detection>, StageTimes)> {
        match engine.detect_frame(frame, &live.filter) {
            Ok((dets, times)) => {
                let m = &engine.model().manifest;
                self.shared
                    .stats
                    .record_inference(&m.name, engine.backend_name(), &times);
                Some((dets, times))
            }
            Err(e) => {
                self.shared
                    .stats
                    .infer_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, frame = frame.seq, "inference failed; frame skipped");
                None
            }
        }
    }

    fn message(
        &self,
        engine: &Engine,
        frame: &Frame,
        live: &LiveSettings,
        detections: &[Detection],
    ) -> InferenceMessage {
        let m = &engine.model().manifest;
        InferenceMessage::new(
            &live.source_name,
            FrameInfo {
                pts_ms: pts_ms(frame),
                width: frame.width,
                height: frame.height,
            },
            ModelInfo {
                name: m.name.clone(),
                version: m.version.clone(),
            },
            detections,
        )
    }

    /// Frames with nothing in them send nothing. False when the sink has gone away.
    fn publish(
        &self,
        msg: &InferenceMessage,
        engine: &Engine,
        live: &LiveSettings,
        received: Instant,
    ) -> bool {
        if msg.inferences.is_empty() {
            return true;
        }
        let body = match serde_json::to_vec(msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize message");
                return true;
            }
        };
        let m = &engine.model().manifest;
        let out = OutMessage {
            body,
            properties: vec![
                ("source".into(), live.source_name.clone()),
                ("model".into(), m.name.clone()),
                ("modelVersion".into(), m.version.clone()),
            ],
        };
        self.messages.send(Envelope { out, received }).is_ok()
    }
}

/// Stream time; frames without a PTS use their arrival time on a monotonic clock.
fn pts_ms(frame: &Frame) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    frame
        .pts_ms
        .unwrap_or_else(|| frame.received.saturating_duration_since(epoch).as_millis() as u64)
}
