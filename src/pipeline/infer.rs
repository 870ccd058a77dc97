//! The inference stage, read top to bottom: frame -> engine -> tracker -> frames message ->
//! scene -> snapshots -> sink (frames and/or scene messages, per `output_mode`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use crossbeam_channel::Sender;

use crossbeam_channel::Receiver;

mod edges;

use super::dispatch::{Dispatch, Step, IDLE};
use super::mux::Next;
use super::sources::{PerSource, SourceStats, TrackingFactory};
use super::tune::AutoLayout;
use super::{EngineSlot, FrameObserver, LiveSettings, Stats};
use crate::engine::pool::Done;
use crate::engine::{Detection, DetectionFilter, Engine, EngineError, StageTimes};
use crate::ingest::{Frame, ScaleTarget};
use crate::message::InferenceMessage;
use crate::publish::OutMessage;

/// How each source's tracking stage is made, and the score trackers want detections down to.
pub(super) struct Tracking {
    pub factory: TrackingFactory,
    /// The engine runs at min(user threshold, this) so ByteTrack gets its low-score
    /// detections; users see only those at or above their threshold.
    pub low_score: f32,
    /// False only in `bench --scene-ab`'s run without the stage.
    pub enabled: bool,
}

/// A message on its way to the sink, with the time its frame arrived (for latency).
pub(super) struct Envelope {
    pub out: OutMessage,
    pub received: Instant,
    /// The source's counters (its `messages` count deliveries).
    pub source: Option<Arc<SourceStats>>,
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
    /// The live view (`--ui`): cheap when nobody watches.
    pub ui: Option<Arc<crate::ui::Tap>>,
}

/// What a frame carries through the instance pool: the settings it was admitted under.
pub(super) struct Meta {
    live: Arc<LiveSettings>,
    min_score: f32,
}

pub(super) struct InferLoop {
    /// Frames and source joins/leaves, in fair order (the mux thread, see `mux.rs`).
    pub frames: Receiver<Next>,
    pub messages: Sender<Envelope>,
    pub shared: Shared,
    tracking: Tracking,
    /// Each source's tracker, scene and rate limit, by source id.
    sources: BTreeMap<u32, PerSource>,
    model: Option<(String, String)>,
    /// The labels the tracks were made with: a swap to other labels starts over.
    labels: Option<Vec<String>>,
}

impl InferLoop {
    pub fn new(
        frames: Receiver<Next>,
        messages: Sender<Envelope>,
        tracking: Tracking,
        shared: Shared,
    ) -> Self {
        InferLoop {
            frames,
            messages,
            shared,
            tracking,
            sources: BTreeMap::new(),
            model: None,
            labels: None,
        }
    }

    /// Runs until every source has ended and no more can join, or the sink goes away.
    /// Detection runs on the engine's instances in parallel; results come back here in
    /// frame order, and a source joins or leaves only when no frame is in flight.
    pub fn run(mut self) {
        let mut dispatch = Dispatch::<Meta>::new(self.shared.stats.clone());
        let mut tune = AutoLayout::new();
        let mut last_tick = Instant::now();
        let sink_gone = loop {
            let step = dispatch.next(&self.frames);
            // Time-based work runs on idle turns and, on busy ones, every `IDLE`.
            if matches!(step, Step::Idle) || last_tick.elapsed() >= IDLE {
                last_tick = Instant::now();
                tune.retry(&self.shared.engine, &self.shared.stats, last_tick);
                if !self.tick(last_tick) {
                    break true;
                }
            }
            match step {
                Step::End => break false,
                Step::Idle => {}
                Step::Source(Next::Joined(info)) => self.join_source(info),
                Step::Source(Next::Ended(id)) => {
                    if !self.end_source(id) {
                        break true;
                    }
                }
                Step::Source(_) => {}
                Step::Frame(frame) => {
                    if let Some((engine, filter, meta)) = self.admit(&frame) {
                        dispatch.submit(engine, frame, filter, meta);
                    }
                }
                Step::Result(done) => {
                    let ok = done.result.is_ok();
                    tune.observe(&done.engine, ok, &self.shared.stats);
                    if tune.pending() {
                        // The next layout loads only once the old one's frames are done.
                        dispatch.hold();
                    }
                    if !self.finish(done) {
                        break true;
                    }
                }
                Step::Drained => tune.drained(&self.shared.engine, &self.shared.stats),
            }
        };
        if sink_gone {
            tracing::error!("the sink's thread has ended: the inference stage stops");
        }
        // End of stream (or stop): every live track of every source ends, so `new` and
        // `end` pair up.
        let ids: Vec<u32> = self.sources.keys().copied().collect();
        for id in ids {
            self.end_source(id);
        }
    }

    /// The source's rate limit, then the engine and filter the frame is detected with.
    fn admit(&mut self, frame: &Frame) -> Option<(Arc<Engine>, DetectionFilter, Meta)> {
        let live = self.shared.settings.load_full();
        let src = self.sources.get_mut(&frame.source)?;
        // A source's own maxFps, else the live settings' one.
        let max_fps = src.info.max_fps.get().or(live.max_fps);
        if !src.rate.admit(pts_ms(frame), max_fps) {
            src.info
                .stats
                .frames_skipped
                .fetch_add(1, Ordering::Relaxed);
            self.shared
                .stats
                .frames_skipped
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let engine = self.engine_for_frame();
        let min_score = live
            .filter
            .min_confidence
            .unwrap_or_else(|| engine.min_confidence());
        let filter = self.filter(&live, min_score);
        Some((engine, filter, Meta { live, min_score }))
    }

    /// Everything after detection, in frame order. False when the sink has gone away.
    fn finish(&mut self, done: Done<Meta>) -> bool {
        let Done {
            engine,
            frame,
            meta: Meta { live, min_score },
            result,
            ..
        } = done;
        if !self.reset_on_new_labels(&engine, &live, frame.received) {
            return false;
        }
        let Some((detections, times)) = self.detected(&engine, &frame, result) else {
            return true;
        };
        let Some(src) = self.sources.get_mut(&frame.source) else {
            return true;
        };
        src.info.stats.record_inferred();
        let name = src.name(&live).to_string();
        let stats = src.info.stats.clone();
        let t0 = Instant::now();
        let scene = live.scene_for(&src.info.key);
        src.scene.follow_config(scene);
        let pts = pts_ms(&frame);
        let result = if self.tracking.enabled {
            let r = src.scene.frame(&frame, pts, &detections, min_score, &name);
            self.shared.stats.record_track(t0.elapsed());
            r
        } else {
            super::scene_stage::FrameResult::default()
        };
        // The page's counts panel shows what is in each zone now, not the last counts
        // message (those are throttled by countsMinSecs); only while someone watches.
        let live_counts = match &self.shared.ui {
            Some(ui) if self.tracking.enabled && ui.watched() => src.scene.live_counts(),
            _ => None,
        };
        let visible: Vec<Detection> = detections
            .into_iter()
            .filter(|d| d.confidence >= min_score)
            .collect();
        let mut msg = self.message(&engine, &frame, &name, &visible);
        for (inf, id) in msg.inferences.iter_mut().zip(result.ids) {
            inf.entity.id = id;
        }
        if let Some(obs) = &self.shared.observer {
            obs(&msg, &times);
        }
        if let Some(ui) = &self.shared.ui {
            ui.frame(&crate::ui::TapFrame {
                frame: &frame,
                detections: &visible,
                message: &msg,
                scene,
                editable: &live.scene,
                events: &result.messages,
                counts: live_counts.as_ref(),
                backend: engine.backend_name(),
                labels: &engine.model().labels,
            });
        }
        if let Ok(mut l) = self.shared.latest.lock() {
            *l = Some(msg.clone());
        }
        let to = (name.as_str(), &stats);
        if live.output_mode.frames() && !self.publish(&msg, &engine, to, frame.received) {
            return false;
        }
        let out = match self.sources.get_mut(&frame.source) {
            Some(src) => src.scene.outgoing(result.messages, Instant::now()),
            None => result.messages,
        };
        self.publish_scene(out, &engine, &live, to, frame.received)
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

    /// The engine runs down to the tracker's low score; users see only `min_score` and up.
    fn filter(&self, live: &LiveSettings, min_score: f32) -> DetectionFilter {
        DetectionFilter {
            min_confidence: Some(min_score.min(self.tracking.low_score)),
            classes: live.filter.classes.clone(),
        }
    }

    /// Counts a detection result; `None` for a failed frame (skipped).
    fn detected(
        &self,
        engine: &Engine,
        frame: &Frame,
        result: Result<(Vec<Detection>, StageTimes), EngineError>,
    ) -> Option<(Vec<Detection>, StageTimes)> {
        match result {
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
}

/// Where a message comes from: the source's name and counters.
type Origin<'a> = (&'a str, &'a Arc<SourceStats>);

/// Stream time; frames without a PTS use their arrival time on a monotonic clock.
fn pts_ms(frame: &Frame) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    frame
        .pts_ms
        .unwrap_or_else(|| frame.received.saturating_duration_since(epoch).as_millis() as u64)
}
