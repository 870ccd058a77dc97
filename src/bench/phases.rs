//! The three measured phases: decode+scale alone, the bare inference ceiling, and the
//! full pipeline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use super::report::us_hist;
use super::{sys, BenchError};
use crate::engine::backends::InputTensor;
use crate::engine::{DetectionFilter, Engine, EngineError, StageTimes};
use crate::ingest::{FrameQueue, Ingest, IngestConfig, IngestStats};
use crate::message::InferenceMessage;
use crate::pipeline::{LiveSettings, Pipeline, PipelineOptions};
use crate::publish::CountingSink;

pub(super) fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// The ceiling: `n` bare backend calls on one ready tensor, each recorded in `hist`.
/// Returns the total wall time.
pub(super) fn ceiling(
    engine: &Engine,
    tensor: &InputTensor,
    n: u64,
    hist: &mut Histogram<u64>,
    pb: ProgressBar,
) -> Result<Duration, EngineError> {
    let t = Instant::now();
    for _ in 0..n {
        let one = Instant::now();
        engine.infer_only(tensor)?;
        let _ = hist.record(us(one.elapsed()));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(t.elapsed())
}

/// What decode+scale alone did.
pub(super) struct DecodeRun {
    /// Frames per second from the first frame on (start-up is not throughput).
    pub fps: f64,
    /// Process CPU ms per frame over the same span (the decoder's own threads included).
    pub cpu_ms_per_frame: f64,
    /// The first frame's pixels, for the ceiling.
    pub sample: Vec<u8>,
}

/// Decodes and scales `frames` frames with nothing after them.
pub(super) fn decode_only(
    config: &IngestConfig,
    frames: u64,
    quiet: bool,
) -> Result<DecodeRun, BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sink, rx) = FrameQueue::bounded(4);
    let ingest = Ingest::new(
        config.clone(),
        Arc::new(IngestStats::default()),
        stop.clone(),
    );
    let handle = std::thread::spawn(move || ingest.run(&sink));
    let pb = progress(quiet, frames, "decode+scale");
    let mut first: Option<Vec<u8>> = None;
    let mut n = 0u64;
    let mut started: Option<Instant> = None;
    let mut cpu_first = 0.0;
    while n < frames {
        let Ok(f) = rx.recv_timeout(Duration::from_secs(30)) else {
            break;
        };
        if started.is_none() {
            started = Some(Instant::now());
            cpu_first = sys::cpu_seconds();
        }
        first.get_or_insert(f.pixels);
        n += 1;
        pb.inc(1);
    }
    let cpu_s = sys::cpu_seconds() - cpu_first;
    stop.store(true, Ordering::SeqCst);
    drop(rx);
    pb.finish_and_clear();
    handle
        .join()
        .map_err(|_| BenchError::Panicked("ingest"))??;
    let sample = first.ok_or(BenchError::NoFrames)?;
    let elapsed = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    let (fps, cpu_ms_per_frame) = if elapsed > 0.0 && n > 1 {
        ((n - 1) as f64 / elapsed, cpu_s * 1e3 / (n - 1) as f64)
    } else {
        (0.0, 0.0)
    };
    if n < frames {
        tracing::warn!(got = n, wanted = frames, "video shorter than --frames");
    }
    Ok(DecodeRun {
        fps,
        cpu_ms_per_frame,
        sample,
    })
}

pub(super) struct PipelineRun {
    pub frames: u64,
    pub dropped: u64,
    /// Pipeline start to the first inferred frame.
    pub startup: Duration,
    /// First to last inferred frame.
    pub steady: Duration,
    pub cpu_s: f64,
    pub preprocess: Histogram<u64>,
    pub infer: Histogram<u64>,
    pub decode: Histogram<u64>,
    pub latency: Histogram<u64>,
    /// The tracking stage (tracker, zones, lines, events, snapshots) per frame.
    pub track: Histogram<u64>,
}

/// A zone and a line over the sample's walkway, so the tracking stage's cost includes
/// zone membership, line crossings and events, not only the tracker.
fn bench_scene() -> crate::scene::SceneConfig {
    let doc = serde_json::json!({
        "zones": {"middle": {"polygon": [[0.4, 0.3], [0.6, 0.3], [0.6, 0.75], [0.4, 0.75]]}},
        "lines": {"mid": {"from": [0.5, 0.2], "to": [0.5, 0.8]}}
    });
    crate::scene::SceneConfig::from_json(&doc).unwrap_or_default()
}

/// Per-frame stage histograms and first/last completion marks, filled by the observer.
#[derive(Default)]
struct Observed {
    hist: Option<(Histogram<u64>, Histogram<u64>, Histogram<u64>)>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The full pipeline into a counting sink, stopped after `frames` inferred frames.
// `..Default::default()` on LiveSettings stays: fields other rooms add keep their defaults.
#[allow(clippy::needless_update)]
pub(super) fn full_pipeline(
    config: IngestConfig,
    engine: Arc<ArcSwap<Engine>>,
    frames: u64,
    pb: ProgressBar,
    no_scene: bool,
) -> Result<PipelineRun, BenchError> {
    let observed = Arc::new(Mutex::new(Observed {
        hist: Some((us_hist(), us_hist(), us_hist())),
        ..Default::default()
    }));
    let count = Arc::new(AtomicU64::new(0));
    let observer = {
        let (observed, count, pb) = (observed.clone(), count.clone(), pb.clone());
        Arc::new(move |_msg: &InferenceMessage, t: &StageTimes| {
            if let Ok(mut o) = observed.lock() {
                if count.load(Ordering::Relaxed) < frames {
                    let now = Instant::now();
                    o.first.get_or_insert(now);
                    o.last = Some(now);
                }
                if let Some(h) = o.hist.as_mut() {
                    let _ = h.0.record(us(t.preprocess));
                    let _ = h.1.record(us(t.infer));
                    let _ = h.2.record(us(t.decode));
                }
            }
            count.fetch_add(1, Ordering::Relaxed);
            pb.inc(1);
        })
    };
    let cpu0 = sys::cpu_seconds();
    let t0 = Instant::now();
    let pipeline = Pipeline::start(
        config,
        engine,
        Arc::new(ArcSwap::from_pointee(LiveSettings {
            filter: DetectionFilter::default(),
            max_fps: None,
            source_name: "bench".into(),
            // Today's per-frame work: the bench compares against the ceiling.
            output_mode: crate::pipeline::OutputMode::Frames,
            scene: Arc::new(bench_scene()),
            ..Default::default()
        })),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(observer),
            no_scene,
            ..Default::default()
        },
    )?;
    while count.load(Ordering::Relaxed) < frames && !pipeline.is_finished() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let cpu_s = sys::cpu_seconds() - cpu0;
    pipeline.stop();
    let stats = pipeline.stats.clone();
    let report = pipeline.wait();
    pb.finish_and_clear();
    report.ingest?;
    let (latency, track) = stats
        .histograms
        .lock()
        .map(|h| (h.latency.clone(), h.track.clone()))
        .unwrap_or_else(|_| (us_hist(), us_hist()));
    let mut o = observed
        .lock()
        .map_err(|_| BenchError::Panicked("observer"))?;
    let (preprocess, infer, decode) = o
        .hist
        .take()
        .unwrap_or_else(|| (us_hist(), us_hist(), us_hist()));
    Ok(PipelineRun {
        frames: count.load(Ordering::Relaxed).min(frames),
        dropped: stats.ingest.frames_dropped.load(Ordering::Relaxed),
        startup: o.first.map(|f| f.duration_since(t0)).unwrap_or_default(),
        steady: match (o.first, o.last) {
            (Some(f), Some(l)) => l.duration_since(f),
            _ => Duration::ZERO,
        },
        cpu_s,
        preprocess,
        infer,
        decode,
        latency,
        track,
    })
}
