//! Runs one source's GStreamer pipeline, rebuilding it with backoff when a live source dies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use arc_swap::ArcSwap;

use super::frame::Geometry;
use super::frame::{Frame, FrameQueue, Mode, Pushed, ScaleTarget};
use super::{graph, IngestError, SourceSpec};
use crate::defaults;
use crate::model::InputSpec;

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub spec: SourceSpec,
    pub mode: Mode,
    /// What frames are scaled to; swapped live when a model with another input loads.
    pub target: Arc<ArcSwap<ScaleTarget>>,
    /// Give up instead of reconnecting (bench).
    pub fail_fast: bool,
    pub max_backoff: Duration,
    /// A live source silent this long is rebuilt.
    pub stall_timeout: Duration,
}

impl IngestConfig {
    pub fn for_model(spec: SourceSpec, input: &InputSpec) -> IngestConfig {
        let mode = if spec.live {
            Mode::Live
        } else {
            Mode::Lossless
        };
        IngestConfig {
            spec,
            mode,
            target: Arc::new(ArcSwap::from_pointee(ScaleTarget::from(input))),
            fail_fast: false,
            max_backoff: defaults::BACKOFF_MAX,
            stall_timeout: defaults::STALL_TIMEOUT,
        }
    }
}

/// Counters shared with the pipeline and metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub restarts: AtomicU64,
    pub connected: AtomicBool,
    /// Totals this source's counts also go to (a pipeline running several sources).
    pub parent: Option<Arc<IngestStats>>,
}

impl IngestStats {
    /// Counters of one source that also count in `parent`'s totals.
    pub fn child_of(parent: Arc<IngestStats>) -> IngestStats {
        IngestStats {
            parent: Some(parent),
            ..IngestStats::default()
        }
    }

    fn add(&self, pick: fn(&IngestStats) -> &AtomicU64, n: u64) {
        pick(self).fetch_add(n, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.add(pick, n);
        }
    }
}

pub struct Ingest {
    config: IngestConfig,
    stats: Arc<IngestStats>,
    stop: Arc<AtomicBool>,
}

enum Ended {
    Eos,
    Stopped,
    Reconfigure,
}

impl Ingest {
    pub fn new(config: IngestConfig, stats: Arc<IngestStats>, stop: Arc<AtomicBool>) -> Ingest {
        Ingest {
            config,
            stats,
            stop,
        }
    }

    /// Runs until the stream ends (non-live), `stop` is set, or a fatal error.
    /// Live sources are rebuilt forever with exponential backoff unless `fail_fast`.
    pub fn run(&self, queue: &FrameQueue) -> Result<(), IngestError> {
        super::init()?;
        let mut backoff = defaults::BACKOFF_START;
        let mut seq = 0u64;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let before = seq;
            let result = self.run_once(queue, &mut seq);
            self.stats.connected.store(false, Ordering::SeqCst);
            let got_frames = seq > before;
            let live = self.config.spec.live;
            match result {
                Ok(Ended::Stopped) => return Ok(()),
                Ok(Ended::Reconfigure) => {
                    tracing::info!(source = %self.config.spec.name, "model input changed; rebuilding the source pipeline");
                    continue;
                }
                Ok(Ended::Eos) if !live => return Ok(()),
                Err(e) if !live || self.config.fail_fast => return Err(e),
                Ok(Ended::Eos) if self.config.fail_fast => {
                    return Err(self.stream_err("live source ended".into()))
                }
                outcome => {
                    if got_frames {
                        backoff = defaults::BACKOFF_START;
                    }
                    let reason = match outcome {
                        Err(e) => e.to_string(),
                        _ => "end of stream".to_string(),
                    };
                    tracing::warn!(source = %self.config.spec.name, %reason, retry_in_s = backoff.as_secs_f32(), "source lost; reconnecting");
                    self.stats.add(|s| &s.restarts, 1);
                    if self.sleep_unless_stopped(backoff) {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    fn stream_err(&self, message: String) -> IngestError {
        IngestError::Stream {
            source_name: self.config.spec.name.clone(),
            message,
        }
    }

    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop.load(Ordering::SeqCst)
    }

    fn run_once(&self, queue: &FrameQueue, seq: &mut u64) -> Result<Ended, IngestError> {
        let target = self.config.target.load_full();
        tracing::debug!(source = %self.config.spec.name, head = %self.config.spec.describe(), "building pipeline");
        let graph::Built {
            pipeline,
            appsink,
            scale_sink,
        } = graph::build(&self.config.spec, &target, self.config.mode)?;
        let guard = PipelineGuard(pipeline.clone());
        let bus = pipeline.bus().ok_or_else(|| IngestError::Build {
            what: self.config.spec.describe(),
            message: "pipeline has no bus".into(),
        })?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            return Err(self.stream_err(
                bus_error(&bus).unwrap_or_else(|| "could not start the pipeline".into()),
            ));
        }
        let mut last_frame = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                drop(guard);
                return Ok(Ended::Stopped);
            }
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
                match msg.view() {
                    gst::MessageView::Eos(_) => {
                        // Frames still queued in the appsink come first.
                        while let Some(sample) = appsink.try_pull_sample(gst::ClockTime::ZERO) {
                            self.deliver(queue, &sample, &scale_sink, &target, seq)?;
                        }
                        return Ok(Ended::Eos);
                    }
                    gst::MessageView::Error(err) => {
                        return Err(self.stream_err(format_error(err)));
                    }
                    _ => {}
                }
            }
            match appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                Some(sample) => {
                    self.stats.connected.store(true, Ordering::SeqCst);
                    last_frame = Instant::now();
                    if !self.deliver(queue, &sample, &scale_sink, &target, seq)? {
                        return Ok(Ended::Stopped);
                    }
                    // Live sources follow a model swap; files keep their position and the
                    // engine adapts the frames instead.
                    if self.config.spec.live && **self.config.target.load() != *target {
                        return Ok(Ended::Reconfigure);
                    }
                }
                None => {
                    if appsink.is_eos() {
                        continue; // the EOS message is on the bus; handled above
                    }
                    if self.config.spec.live && last_frame.elapsed() > self.config.stall_timeout {
                        return Err(self.stream_err(format!(
                            "no frames for {} s",
                            self.config.stall_timeout.as_secs()
                        )));
                    }
                }
            }
        }
    }

    /// Sends one frame downstream; false when the receiver is gone.
    fn deliver(
        &self,
        queue: &FrameQueue,
        sample: &gst::Sample,
        scale_sink: &gst::Pad,
        target: &ScaleTarget,
        seq: &mut u64,
    ) -> Result<bool, IngestError> {
        let frame_bytes = target.frame_bytes();
        let Some(buffer) = sample.buffer() else {
            return Ok(true);
        };
        let info = sample
            .caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(c).ok());
        let map = buffer
            .map_readable()
            .map_err(|_| self.stream_err("unreadable buffer".into()))?;
        let row = (target.width * 3) as usize;
        let stride = info
            .as_ref()
            .and_then(|i| i.stride().first().copied())
            .map(|s| s as usize)
            .unwrap_or(row);
        let pixels = if stride == row {
            map.as_slice().get(..frame_bytes).map(<[u8]>::to_vec)
        } else {
            let mut v = Vec::with_capacity(frame_bytes);
            for y in 0..target.height as usize {
                if let Some(r) = map.as_slice().get(y * stride..y * stride + row) {
                    v.extend_from_slice(r);
                }
            }
            (v.len() == frame_bytes).then_some(v)
        };
        let Some(pixels) = pixels else {
            return Err(self.stream_err(format!(
                "frame of {} bytes, expected {frame_bytes}",
                map.size()
            )));
        };
        let (width, height) = scale_sink
            .current_caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
            .map(|i| (i.width(), i.height()))
            .unwrap_or((target.width, target.height));
        *seq += 1;
        self.stats.add(|s| &s.frames_in, 1);
        let frame = Frame {
            seq: *seq,
            pts_ms: buffer.pts().map(|t| t.mseconds()),
            width,
            height,
            pixels,
            order: target.order,
            geometry: Geometry::new(target, width, height),
            received: Instant::now(),
            source: 0,
        };
        match queue.push(frame, self.config.mode, &self.stop) {
            Pushed::Queued { dropped } => {
                if dropped > 0 {
                    self.stats.add(|s| &s.frames_dropped, dropped);
                }
                Ok(true)
            }
            Pushed::Closed => Ok(false),
        }
    }
}

/// Sets the pipeline to Null however run_once exits.
struct PipelineGuard(gst::Pipeline);

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn bus_error(bus: &gst::Bus) -> Option<String> {
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(format_error(err)),
        _ => None,
    }
}

fn format_error(err: &gst::message::Error) -> String {
    let src = err
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    // GStreamer messages may quote the URI they were given.
    crate::redact::text(&format!("{src}: {}", err.error()))
}
