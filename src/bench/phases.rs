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
    /// First inferred frame to the engine layout being settled (auto-tuning trials and
    /// loads; about zero for a fixed layout). Like start-up, a once-per-model cost.
    pub tuning: Duration,
    /// `frames` inferred frames on the settled layout, first to last.
    pub steady: Duration,
    pub cpu_s: f64,
    /// The steady window's CPU per frame, by what the threads do.
    pub cpu: super::cpu::CpuSplit,
    pub preprocess: Histogram<u64>,
    pub infer: Histogram<u64>,
    pub decode: Histogram<u64>,
    pub latency: Histogram<u64>,
    /// The tracking stage (tracker, zones, lines, events, snapshots) per frame.
    pub track: Histogram<u64>,
}

/// Lets a started pipeline run until `after` more frames have completed (`count`) once its
/// engine layout has settled (the tuner reports it when the chosen layout serves; a fixed
/// layout settles on the first result), or it finishes, or `cap` frames came in all.
/// `on_settle` runs once, when it settles. Returns the frame count at settling.
pub(super) fn run_past_settling(
    pipeline: &Pipeline,
    count: &AtomicU64,
    after: u64,
    cap: u64,
    mut on_settle: impl FnMut(),
) -> Option<u64> {
    let mut settled: Option<u64> = None;
    loop {
        let n = count.load(Ordering::Relaxed);
        if settled.is_none() && pipeline.stats.layout().is_some() {
            settled = Some(n);
            on_settle();
        }
        let done = settled.is_some_and(|s| n >= s.saturating_add(after)) || n >= cap;
        if done || pipeline.is_finished() {
            return settled;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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

/// Per-frame stage histograms and completion marks, filled by the observer.
#[derive(Default)]
struct Observed {
    hist: Option<(Histogram<u64>, Histogram<u64>, Histogram<u64>)>,
    /// When each inferred frame completed, in order (bounded by `max_marks`).
    marks: Vec<Instant>,
    max_marks: usize,
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
        marks: Vec::new(),
        max_marks: (frames as usize).saturating_mul(4).saturating_add(1000),
    }));
    let count = Arc::new(AtomicU64::new(0));
    let observer = {
        let (observed, count, pb) = (observed.clone(), count.clone(), pb.clone());
        Arc::new(move |_msg: &InferenceMessage, t: &StageTimes| {
            if let Ok(mut o) = observed.lock() {
                if o.marks.len() < o.max_marks {
                    o.marks.push(Instant::now());
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
    let mut cpu0 = sys::cpu_seconds();
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
    // `frames` frames are measured once the layout is settled (the tuner reports it after
    // the chosen layout is serving); the tuning before it is reported on its own.
    let limit = frames.saturating_mul(4).saturating_add(1000);
    let mut threads0 = Vec::new();
    let settled = run_past_settling(&pipeline, &count, frames, limit, || {
        cpu0 = sys::cpu_seconds();
        threads0 = super::cpu::snapshot();
    });
    let cpu_s = sys::cpu_seconds() - cpu0;
    // The count first: a frame finished during the /proc walk then has its CPU counted.
    let counted = count
        .load(Ordering::Relaxed)
        .saturating_sub(settled.unwrap_or(0));
    let threads1 = super::cpu::snapshot();
    pipeline.stop();
    let stats = pipeline.stats.clone();
    let report = pipeline.wait();
    pb.finish_and_clear();
    report.ingest?;
    report.inference?;
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
    let m = &o.marks;
    let from = (settled.unwrap_or(0) as usize).min(m.len().saturating_sub(1));
    let to = (from + frames as usize).min(m.len());
    let span = |a: usize, b: usize| match (m.get(a), m.get(b)) {
        (Some(a), Some(b)) => b.saturating_duration_since(*a),
        _ => Duration::ZERO,
    };
    Ok(PipelineRun {
        frames: (to - from) as u64,
        dropped: stats.ingest.frames_dropped.load(Ordering::Relaxed),
        startup: m.first().map(|f| f.duration_since(t0)).unwrap_or_default(),
        tuning: span(0, from),
        steady: span(from, to.saturating_sub(1)),
        cpu_s,
        // No settled window (the pipeline ended first) or no frame in it: no split.
        cpu: match (settled, counted) {
            (Some(_), 1..) => super::cpu::split(
                &threads0,
                &threads1,
                counted,
                super::cpu::ticks_per_second(),
            ),
            _ => Default::default(),
        },
        preprocess,
        infer,
        decode,
        latency,
        track,
    })
}
