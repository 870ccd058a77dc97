//! Benchmarks: honest numbers, measured side by side in one process.
//! For each backend: decode+scale alone, the bare inference ceiling on a real frame,
//! then the full pipeline, with per-stage percentiles, CPU time and peak RSS.
//! `edgelens bench` is a thin front end over [`run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

mod chart;
pub mod cpu;
pub mod html;
pub mod layouts;
pub mod limit;
mod phases;
pub mod report;
pub mod start;
pub mod streams;
mod sys;

use crate::engine::{backends, preprocess, Engine, EngineError, EngineOptions};
use crate::ingest::{IngestConfig, IngestError, Mode};
use report::{pct, round1, us_hist, BackendResult, Report};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--frames must be at least 10, got {0}")]
    TooFewFrames(u64),
    #[error("no backend in this build runs the model's format")]
    NoBackend,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("backend {backend}: {source}")]
    Engine {
        backend: String,
        #[source]
        source: EngineError,
    },
    #[error("the source produced no frames")]
    NoFrames,
    #[error(transparent)]
    InferenceEnded(#[from] crate::pipeline::InferenceEnded),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error("start measurement: {0}")]
    Start(String),
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Model folder holding model.toml.
    pub model: PathBuf,
    /// Backends to compare; empty: every compiled-in backend that runs the model.
    pub backends: Vec<String>,
    /// Video to decode (any source works; live sources fail fast here).
    pub video: String,
    /// Frames per phase.
    pub frames: u64,
    /// Intra-op threads per instance; 0 is `auto`.
    pub threads: usize,
    /// Engine instances; 0 is `auto` (with threads: tuned on the stream first, as `run` does).
    pub instances: usize,
    /// Where bench.json and bench.png go.
    pub out: PathBuf,
    /// No progress bars (CI logs).
    pub quiet: bool,
    /// More model folders, measured after `model` the same way (fp32 and int8 side by side).
    pub extra_models: Vec<PathBuf>,
    /// More intra-op thread counts, measured after `threads` for every model and backend.
    pub extra_threads: Vec<usize>,
    /// Also write bench.html: self-contained, the chart inline.
    pub html: bool,
    /// Also run the pipeline without the tracking stage, right after, and report both
    /// pipeline/ceiling ratios side by side (what tracker + scene cost).
    pub scene_ab: bool,
    /// Also time cold starts of `edgelens run` (bench.json `start`, see start.rs).
    pub start: bool,
}

/// A finished run: the report and the files written.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub json: PathBuf,
    pub png: PathBuf,
    /// bench.html, when asked for.
    pub html: Option<PathBuf>,
}

pub fn run(s: &Settings) -> Result<Outcome, BenchError> {
    if s.frames < 10 {
        return Err(BenchError::TooFewFrames(s.frames));
    }
    let spec = crate::ingest::resolve(&s.video, &Default::default(), None)?;
    let write_err = |path: &std::path::Path, e: &dyn std::fmt::Display| BenchError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&s.out).map_err(|e| write_err(&s.out, &e))?;
    let mut results = Vec::new();
    let (mut model, mut model_version) = (String::new(), String::new());
    // Every model x backend x thread count, in that order: one table, one sitting.
    for (i, one) in expand(s).iter().enumerate() {
        for backend in &backend_names(one)? {
            let (mut r, m) = one_backend(one, backend, &spec)?;
            if i == 0 {
                (model, model_version) = (m.name.clone(), m.version.clone());
            }
            r.model = m.name.clone();
            results.push(r);
        }
    }
    let report = Report {
        model,
        model_version,
        video: s.video.clone(),
        frames: s.frames,
        host: sys::host(),
        cores: sys::cores(),
        results,
        start: start_section(s, &backend_names(s)?)?,
    };
    let json = s.out.join("bench.json");
    let bytes = serde_json::to_vec_pretty(&report).map_err(|e| write_err(&json, &e))?;
    std::fs::write(&json, bytes).map_err(|e| write_err(&json, &e))?;
    let png = s.out.join("bench.png");
    chart::draw(&report, &png).map_err(|e| write_err(&png, &e))?;
    let html = match s.html {
        true => Some(html::write(&report, &png, &s.out).map_err(|(p, e)| write_err(&p, &e))?),
        false => None,
    };
    Ok(Outcome {
        report,
        json,
        png,
        html,
    })
}

/// The run as one Settings per (model, thread count), `model` and `threads` first.
fn expand(s: &Settings) -> Vec<Settings> {
    let models = std::iter::once(&s.model).chain(&s.extra_models);
    let mut threads = vec![s.threads];
    for t in &s.extra_threads {
        if !threads.contains(t) {
            threads.push(*t);
        }
    }
    let mut out = Vec::new();
    for (i, m) in models.enumerate() {
        if i > 0 && *m == s.model {
            continue;
        }
        for &t in &threads {
            out.push(Settings {
                model: m.clone(),
                threads: t,
                extra_models: Vec::new(),
                extra_threads: Vec::new(),
                ..s.clone()
            });
        }
    }
    out
}

/// `--start`: five cold spawns of `edgelens run` with the first backend (this binary).
fn start_section(
    s: &Settings,
    names: &[String],
) -> Result<Option<start::StartSection>, BenchError> {
    if !s.start {
        return Ok(None);
    }
    let bin = std::env::current_exe().map_err(|e| BenchError::Start(e.to_string()))?;
    let settings = start::StartSettings {
        bin,
        model: s.model.clone(),
        backend: names.first().cloned().unwrap_or_default(),
        video: s.video.clone(),
        threads: s.threads,
        instances: s.instances,
        runs: crate::defaults::START_RUNS,
        messages: crate::defaults::START_MESSAGES,
    };
    start::measure(&settings)
        .map(Some)
        .map_err(|e| BenchError::Start(e.to_string()))
}

fn backend_names(s: &Settings) -> Result<Vec<String>, BenchError> {
    if !s.backends.is_empty() {
        return Ok(s.backends.clone());
    }
    let model = crate::model::Model::load(&s.model).map_err(|e| BenchError::Engine {
        backend: "(any)".into(),
        source: e.into(),
    })?;
    let names: Vec<String> = backends::running(model.manifest.format)
        .into_iter()
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(BenchError::NoBackend);
    }
    Ok(names)
}

/// The pipeline with and without the tracking stage, interleaved in `AB_ROUNDS` rounds of
/// frames/rounds each (without, then with), so load drift on a shared box hits both alike.
/// Returns the steady FPS with and without, over all rounds.
fn scene_ab(
    s: &Settings,
    backend: &str,
    config: &IngestConfig,
    slot: &Arc<ArcSwap<Engine>>,
) -> Result<(f64, f64), BenchError> {
    const AB_ROUNDS: u64 = 3;
    let n = (s.frames / AB_ROUNDS).max(10);
    let (mut with, mut without) = ((0u64, 0f64), (0u64, 0f64));
    for _ in 0..AB_ROUNDS {
        for no_scene in [true, false] {
            let what = if no_scene { "no scene" } else { "scene" };
            let pb = phases::progress(s.quiet, n, &format!("{backend}: A/B {what}"));
            let r = phases::full_pipeline(config.clone(), slot.clone(), n, pb, no_scene)?;
            let acc = if no_scene { &mut without } else { &mut with };
            acc.0 += r.frames.saturating_sub(1);
            acc.1 += r.steady.as_secs_f64();
        }
    }
    let fps = |(f, t): (u64, f64)| f as f64 / t.max(1e-9);
    Ok((fps(with), fps(without)))
}

/// Load, decode alone, half the ceiling, the pipeline, the other half of the ceiling.
fn one_backend(
    s: &Settings,
    backend: &str,
    spec: &crate::ingest::SourceSpec,
) -> Result<(BackendResult, crate::model::Manifest), BenchError> {
    let engine_err = |source: EngineError| BenchError::Engine {
        backend: backend.to_string(),
        source,
    };
    let opts = EngineOptions {
        backend: Some(backend.to_string()),
        threads: 1,
    };
    let model = crate::model::Model::load(&s.model).map_err(|e| engine_err(e.into()))?;
    let layout = layouts::resolve(s, spec, &model, &opts)?;
    sys::reset_peak_rss();
    let t0 = Instant::now();
    let fixed = crate::engine::LayoutRequest::from_counts(layout.instances, layout.threads);
    let engine = Engine::from_model_layout(model, &opts, fixed).map_err(engine_err)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let manifest = engine.model().manifest.clone();

    // 1. Decode + scale alone, and keep one real frame for the ceiling.
    let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
    config.mode = Mode::Lossless;
    config.fail_fast = true;
    let decoded = phases::decode_only(&config, s.frames, s.quiet)?;
    let (decode_fps, sample) = (decoded.fps, decoded.sample);

    // 2. The ceiling: the same backend on a ready tensor, tight loop. Half before and half
    // after the pipeline: load drift on a shared box hits both alike.
    let input = engine.input_spec();
    let tensor = preprocess::to_tensor(&sample, input.color, input);
    for _ in 0..3 {
        engine.infer_only(&tensor).map_err(engine_err)?;
    }
    let mut ceiling_hist = us_hist();
    let halves = [s.frames / 2, s.frames - s.frames / 2];
    let mut ceiling = |engine: &Engine, n: u64| -> Result<Duration, BenchError> {
        let pb = phases::progress(s.quiet, n, &format!("{backend}: ceiling"));
        phases::ceiling(engine, &tensor, n, &mut ceiling_hist, pb).map_err(engine_err)
    };
    let before = ceiling(&engine, halves[0])?;

    // 3. The full pipeline, stopped after `frames` inferred frames.
    let slot = Arc::new(ArcSwap::from_pointee(engine));
    let pb = phases::progress(s.quiet, s.frames, &format!("{backend}: pipeline"));
    let r = phases::full_pipeline(config.clone(), slot.clone(), s.frames, pb, false)?;
    let after = ceiling(&slot.load_full(), halves[1])?;
    let ab = if s.scene_ab {
        Some(scene_ab(s, backend, &config, &slot)?)
    } else {
        None
    };

    // With K instances the ceiling is K bare instances side by side (each timed alone).
    let ceiling_fps = s.frames as f64 / (before + after).as_secs_f64() * layout.instances as f64;
    let peak_rss_mb = sys::peak_rss_mb();
    // The limit needs the 1-thread ceiling: this row's own, or a 1-thread engine's now.
    let infer_1thread_ms = match layout.threads {
        1 => 1e3 * layout.instances as f64 / ceiling_fps,
        _ => limit::infer_1thread_ms(&s.model, backend, &tensor, (s.frames / 2).max(10))
            .map_err(engine_err)?,
    };
    let pre_ms = if r.preprocess.is_empty() {
        0.0
    } else {
        r.preprocess.mean() / 1e3
    };
    // Every core's 1-thread inference at once: what the cores give together.
    let cores = sys::cores();
    let all_cores =
        limit::infer_at_once_ms(&s.model, backend, &tensor, (s.frames / 4).max(10), cores)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "bench: all-cores inference not measured");
                0.0
            });
    let machine = limit::machine_limit(cores, infer_1thread_ms, decoded.cpu_ms_per_frame, pre_ms)
        .with_all_cores(all_cores);
    // Steady state on the settled layout, first to last measured frame: the ceiling
    // excludes warm-up too, and tuning is reported on its own (`tuning_ms`).
    let pipeline_fps = r.frames.saturating_sub(1) as f64 / r.steady.as_secs_f64().max(1e-9);
    let result = BackendResult {
        backend: backend.to_string(),
        threads: layout.threads,
        instances: layout.instances,
        load_ms: round1(load_ms),
        decode_fps: round1(decode_fps),
        ceiling_fps: round1(ceiling_fps),
        ceiling_ms: pct(&ceiling_hist),
        pipeline_fps: round1(pipeline_fps),
        pipeline_over_ceiling: (pipeline_fps / ceiling_fps * 1000.0).round() / 1000.0,
        startup_ms: round1(r.startup.as_secs_f64() * 1e3),
        tuning_ms: round1(r.tuning.as_secs_f64() * 1e3),
        frames: r.frames,
        dropped: r.dropped,
        preprocess_ms: pct(&r.preprocess),
        infer_ms: pct(&r.infer),
        decode_nms_ms: pct(&r.decode),
        frame_to_sink_ms: pct(&r.latency),
        cpu_s_per_frame: (r.cpu_s / r.frames.max(1) as f64 * 1e4).round() / 1e4,
        peak_rss_mb: round1(peak_rss_mb),
        model: String::new(),
        pipeline_over_limit: limit::ratio(pipeline_fps, &machine),
        pipeline_over_limit_all_cores: limit::ratio_all_cores(pipeline_fps, &machine),
        cpu_ms: r.cpu,
        limit: machine,
        track_ms: pct(&r.track),
        no_scene: ab.map(|(with_fps, without_fps)| {
            let change = (with_fps - without_fps) / without_fps.max(1e-9);
            report::SceneAb {
                pipeline_fps: round1(without_fps),
                pipeline_over_ceiling: (pipeline_fps / ceiling_fps / (1.0 + change) * 1000.0)
                    .round()
                    / 1000.0,
                ratio_change_pct: (change * 1e4).round() / 100.0,
                stage_share_pct: (r.track.mean() / 1e6 * pipeline_fps * 1e4).round() / 100.0,
            }
        }),
    };
    Ok((result, manifest))
}
