//! Runs one source's GStreamer pipeline, rebuilding it with backoff when a live source dies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use arc_swap::ArcSwap;

use super::{IngestError, SourceSpec};
use crate::engine::preprocess::Geometry;
use crate::model::{ColorOrder, DType, InputSpec, Layout, Resize};

/// One frame, scaled to the model input, with the original frame's size and timestamp.
#[derive(Debug)]
pub struct Frame {
    pub seq: u64,
    pub pts_ms: Option<u64>,
    /// Original (pre-scale) size.
    pub width: u32,
    pub height: u32,
    /// Packed pixels at `geometry.input_w x input_h`, in `order`.
    pub pixels: Vec<u8>,
    pub order: ColorOrder,
    /// Where the original frame sits inside `pixels`.
    pub geometry: Geometry,
    /// When the appsink handed the frame over; frame->sink latency starts here.
    pub received: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Newest frame wins; older queued frames are dropped (and counted).
    Live,
    /// Every frame, as fast as decode allows (benchmarks, batch).
    Lossless,
    /// Every frame, paced at the file's own frame rate.
    Realtime,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub spec: SourceSpec,
    pub mode: Mode,
    /// Model input the frames are scaled to; swapped live when a model with another input loads.
    pub target: Arc<ArcSwap<InputTarget>>,
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
            target: Arc::new(ArcSwap::from_pointee(InputTarget::from(input))),
            fail_fast: false,
            max_backoff: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
        }
    }

    /// The full description: the source head, then scale (before convert: far cheaper), convert, appsink.
    pub fn launch(&self, t: &InputTarget) -> String {
        let format = match t.order {
            ColorOrder::Rgb => "RGB",
            ColorOrder::Bgr => "BGR",
        };
        let par = if t.letterbox {
            ",pixel-aspect-ratio=1/1"
        } else {
            ""
        };
        let (max_buffers, drop, sync) = match self.mode {
            Mode::Live => (1, true, false),
            Mode::Lossless => (4, false, false),
            Mode::Realtime => (4, false, true),
        };
        format!(
            "{head} ! queue max-size-buffers=4 ! videoscale name=edgelens_scale add-borders={borders} ! video/x-raw,width={w},height={h}{par} ! videoconvert ! video/x-raw,format={format} ! appsink name=edgelens_sink max-buffers={max_buffers} drop={drop} sync={sync} enable-last-sample=false",
            head = self.spec.launch,
            borders = t.letterbox,
            w = t.width,
            h = t.height,
        )
    }
}

/// What frames are scaled and converted to.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTarget {
    pub width: u32,
    pub height: u32,
    pub letterbox: bool,
    pub order: ColorOrder,
}

impl From<&InputSpec> for InputTarget {
    fn from(input: &InputSpec) -> InputTarget {
        InputTarget {
            width: input.width,
            height: input.height,
            letterbox: input.resize == Resize::Letterbox,
            order: input.color,
        }
    }
}

impl InputTarget {
    fn geometry(&self, frame_w: u32, frame_h: u32) -> Geometry {
        let spec = InputSpec {
            name: None,
            width: self.width,
            height: self.height,
            layout: Layout::Nhwc,
            dtype: DType::U8,
            color: self.order,
            resize: if self.letterbox {
                Resize::Letterbox
            } else {
                Resize::Stretch
            },
            mean: None,
            std: None,
        };
        Geometry::new(&spec, frame_w, frame_h)
    }
}

/// Counters shared with the pipeline and metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub frames_in: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub restarts: AtomicU64,
    pub connected: AtomicBool,
}

/// Where frames go: a bounded channel. `drain` is a second receiver on the same channel,
/// used in live mode to drop the oldest queued frame so the newest always gets in.
#[derive(Clone)]
pub struct FrameSink {
    pub tx: Sender<Frame>,
    pub drain: Receiver<Frame>,
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

pub fn init() -> Result<(), IngestError> {
    gst::init().map_err(|e| IngestError::Init(e.to_string()))
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
    pub fn run(&self, sink: &FrameSink) -> Result<(), IngestError> {
        init()?;
        let mut backoff = Duration::from_secs(1);
        let mut seq = 0u64;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let before = seq;
            let result = self.run_once(sink, &mut seq);
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
                        backoff = Duration::from_secs(1);
                    }
                    let reason = match outcome {
                        Err(e) => e.to_string(),
                        _ => "end of stream".to_string(),
                    };
                    tracing::warn!(source = %self.config.spec.name, %reason, retry_in_s = backoff.as_secs_f32(), "source lost; reconnecting");
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
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

    fn run_once(&self, sink: &FrameSink, seq: &mut u64) -> Result<Ended, IngestError> {
        let target = self.config.target.load_full();
        let launch = self.config.launch(&target);
        tracing::debug!(%launch, "building pipeline");
        let element = gst::parse::launch(&launch).map_err(|e| IngestError::Build {
            launch: launch.clone(),
            message: e.to_string(),
        })?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| IngestError::Build {
                launch: launch.clone(),
                message: "not a pipeline".into(),
            })?;
        let guard = PipelineGuard(pipeline.clone());
        let appsink = pipeline
            .by_name("edgelens_sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| IngestError::Build {
                launch: launch.clone(),
                message: "no appsink".into(),
            })?;
        let scale_sink = pipeline
            .by_name("edgelens_scale")
            .and_then(|e| e.static_pad("sink"));
        let bus = pipeline.bus().ok_or_else(|| IngestError::Build {
            launch: launch.clone(),
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
                            self.deliver(sink, &sample, scale_sink.as_ref(), &target, seq)?;
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
                    if !self.deliver(sink, &sample, scale_sink.as_ref(), &target, seq)? {
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
        sink: &FrameSink,
        sample: &gst::Sample,
        scale_sink: Option<&gst::Pad>,
        target: &InputTarget,
        seq: &mut u64,
    ) -> Result<bool, IngestError> {
        let frame_bytes = (target.width * target.height * 3) as usize;
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
            .and_then(|p| p.current_caps())
            .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
            .map(|i| (i.width(), i.height()))
            .unwrap_or((target.width, target.height));
        *seq += 1;
        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let frame = Frame {
            seq: *seq,
            pts_ms: buffer.pts().map(|t| t.mseconds()),
            width,
            height,
            pixels,
            order: target.order,
            geometry: target.geometry(width, height),
            received: Instant::now(),
        };
        match self.config.mode {
            Mode::Live => {
                let mut frame = frame;
                loop {
                    match sink.tx.try_send(frame) {
                        Ok(()) => return Ok(true),
                        Err(TrySendError::Disconnected(_)) => return Ok(false),
                        Err(TrySendError::Full(f)) => {
                            // Newest wins: evict the oldest queued frame.
                            if sink.drain.try_recv().is_ok() {
                                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            frame = f;
                        }
                    }
                }
            }
            Mode::Lossless | Mode::Realtime => {
                let mut frame = frame;
                loop {
                    match sink.tx.send_timeout(frame, Duration::from_millis(100)) {
                        Ok(()) => return Ok(true),
                        Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                            return Ok(false)
                        }
                        Err(crossbeam_channel::SendTimeoutError::Timeout(f)) => {
                            if self.stop.load(Ordering::SeqCst) {
                                return Ok(false);
                            }
                            frame = f;
                        }
                    }
                }
            }
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
    format!("{src}: {}", err.error())
}
