//! `bench --layouts`: the full pipeline (decode, engine instances, tracking, sink) in each
//! engine layout, side by side in one run: `auto` (tuned on the stream, then measured) and
//! every candidate it chooses from (1xN, Nx1, 2x(N/2) on N cores). Each row is also given as
//! a ratio to the machine limit: N cores each running the 1-thread ceiling, less the decode
//! and preprocess time each frame costs (issue 12: `cores / (infer_1t + decode + preprocess)`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::{phases, report::round1, sys, BenchError, Settings};
use crate::engine::{
    layout, preprocess, Engine, EngineError, EngineOptions, Layout, LayoutRequest,
};
use crate::ingest::{IngestConfig, Mode};
use crate::message::InferenceMessage;
use crate::pipeline::{LayoutFps, LiveSettings, Pipeline, PipelineOptions};
use crate::publish::CountingSink;

/// Frames after a layout settles that are not timed (old frames in flight, first runs).
const WARM_FRAMES: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct LayoutRow {
    /// `auto` or `KxT`.
    pub layout: String,
    /// The layout that served the timed frames.
    pub instances: usize,
    pub threads: usize,
    pub fps: f64,
    pub over_limit: f64,
    pub frames: usize,
    pub peak_rss_mb: f64,
    /// What the tuner measured (the `auto` row).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tuned: Vec<LayoutFps>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayoutsReport {
    pub model: String,
    pub backend: String,
    pub video: String,
    pub cores: usize,
    pub infer_1t_ms: f64,
    /// Decode + scale CPU time per frame, measured alone.
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub limit_fps: f64,
    pub rows: Vec<LayoutRow>,
}

pub fn run(s: &Settings) -> Result<LayoutsReport, BenchError> {
    let backend = s.backends.first().cloned();
    let engine_err = |source: EngineError| BenchError::Engine {
        backend: backend.clone().unwrap_or_else(|| "(default)".into()),
        source,
    };
    let model = crate::model::Model::load(&s.model).map_err(|e| engine_err(e.into()))?;
    let opts = EngineOptions {
        backend: backend.clone(),
        threads: 1,
    };
    let spec = crate::ingest::resolve(&s.video, &Default::default(), None)?;
    let one = Engine::from_model(model.clone(), &opts).map_err(engine_err)?;
    let mut config = IngestConfig::for_model(spec, one.input_spec());
    config.mode = Mode::Lossless;
    config.fail_fast = true;

    // The limit's parts: decode CPU per frame, 1-thread inference, preprocessing.
    let decoded = phases::decode_only(&config, s.frames, s.quiet)?;
    let (decode_ms, sample) = (decoded.cpu_ms_per_frame, decoded.sample);
    let input = one.input_spec();
    let t = Instant::now();
    for _ in 0..20 {
        std::hint::black_box(preprocess::to_tensor(&sample, input.color, input));
    }
    let preprocess_ms = t.elapsed().as_secs_f64() * 1e3 / 20.0;
    let tensor = preprocess::to_tensor(&sample, input.color, input);
    one_thread(&one, &tensor, 3).map_err(engine_err)?;
    // Half of the 1-thread ceiling before the rows and half after: drift on a shared box
    // hits the limit and the rows alike.
    let mut infer_time = one_thread(&one, &tensor, s.frames / 2).map_err(engine_err)?;
    let backend_name = one.backend_name().to_string();
    let cores = layout::cores();
    drop(one); // not in the rows' RSS

    let mut requests = vec![("auto".to_string(), LayoutRequest::default())];
    for l in LayoutRequest::default().candidates(cores) {
        let fixed = LayoutRequest::from_counts(l.instances, l.threads);
        requests.push((l.to_string(), fixed));
    }
    // Two rounds, the second in reverse order, each row the mean of its two runs.
    let mut rows: Vec<LayoutRow> = Vec::new();
    let order: Vec<usize> = (0..requests.len())
        .chain((0..requests.len()).rev())
        .collect();
    for i in order {
        let (name, request) = &requests[i];
        sys::reset_peak_rss();
        let engine =
            Engine::from_model_layout(model.clone(), &opts, *request).map_err(engine_err)?;
        let slot = Arc::new(ArcSwap::from_pointee(engine));
        let pb = phases::progress(s.quiet, s.frames, &format!("layout {name}"));
        let mut row = timed_pipeline(config.clone(), slot, s.frames as usize)?;
        pb.finish_and_clear();
        row.layout = name.clone();
        row.peak_rss_mb = round1(sys::peak_rss_mb());
        match rows.iter_mut().find(|r| r.layout == *name) {
            Some(first) => {
                first.fps = round1((first.fps + row.fps) / 2.0);
                first.frames += row.frames;
                first.peak_rss_mb = first.peak_rss_mb.max(row.peak_rss_mb);
                first.tuned.extend(row.tuned);
            }
            None => rows.push(row),
        }
    }
    let one = Engine::from_model(model.clone(), &opts).map_err(engine_err)?;
    one_thread(&one, &tensor, 3).map_err(engine_err)?;
    infer_time += one_thread(&one, &tensor, s.frames - s.frames / 2).map_err(engine_err)?;
    let infer_1t_ms = infer_time.as_secs_f64() * 1e3 / s.frames as f64;
    // One definition of the limit for every table (bench/limit.rs).
    let limit_fps = super::limit::machine_limit(cores, infer_1t_ms, decode_ms, preprocess_ms).fps;
    for row in &mut rows {
        row.over_limit = (row.fps / limit_fps * 1000.0).round() / 1000.0;
    }
    Ok(LayoutsReport {
        model: model.manifest.name.clone(),
        backend: backend_name,
        video: s.video.clone(),
        cores,
        infer_1t_ms: round1(infer_1t_ms * 10.0) / 10.0,
        decode_ms: round1(decode_ms * 10.0) / 10.0,
        preprocess_ms: round1(preprocess_ms * 10.0) / 10.0,
        limit_fps: round1(limit_fps),
        rows,
    })
}

/// `n` bare calls on one 1-thread instance; the total time.
fn one_thread(
    engine: &Engine,
    tensor: &crate::engine::backends::InputTensor,
    n: u64,
) -> Result<Duration, EngineError> {
    let t = Instant::now();
    for _ in 0..n {
        engine.infer_only(tensor)?;
    }
    Ok(t.elapsed())
}

/// The layout `bench` measures: the fixed one asked for, or what `auto` picks after tuning
/// in a pipeline of its own on the same video.
pub(super) fn resolve(
    s: &Settings,
    spec: &crate::ingest::SourceSpec,
    model: &crate::model::Model,
    opts: &EngineOptions,
) -> Result<Layout, BenchError> {
    let request = LayoutRequest::from_counts(s.instances, s.threads);
    let candidates = request.candidates(layout::cores());
    if candidates.len() == 1 {
        return Ok(candidates[0]);
    }
    let engine_err = |source: EngineError| BenchError::Engine {
        backend: opts.backend.clone().unwrap_or_default(),
        source,
    };
    let engine = Engine::from_model_layout(model.clone(), opts, request).map_err(engine_err)?;
    let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
    config.mode = Mode::Lossless;
    config.fail_fast = true;
    let row = timed_pipeline(config, Arc::new(ArcSwap::from_pointee(engine)), 2)?;
    tracing::info!(instances = row.instances, threads = row.threads, tried = ?row.tuned, "bench: auto layout");
    Ok(Layout {
        instances: row.instances,
        threads: row.threads,
    })
}

/// Runs the pipeline until the layout settles (at once when fixed, after tuning when
/// `auto`), then times `frames` frames after `WARM_FRAMES`.
fn timed_pipeline(
    config: IngestConfig,
    slot: Arc<ArcSwap<Engine>>,
    frames: usize,
) -> Result<LayoutRow, BenchError> {
    let marks = Arc::new(Mutex::new(Vec::<Instant>::with_capacity(2048)));
    let count = Arc::new(AtomicU64::new(0));
    let observer = {
        let (marks, count) = (marks.clone(), count.clone());
        Arc::new(move |_: &InferenceMessage, _: &crate::engine::StageTimes| {
            if let Ok(mut m) = marks.lock() {
                m.push(Instant::now());
            }
            count.fetch_add(1, Ordering::Relaxed);
        })
    };
    let pipeline = Pipeline::start(
        config,
        slot.clone(),
        Arc::new(ArcSwap::from_pointee(LiveSettings {
            source_name: "bench".into(),
            output_mode: crate::pipeline::OutputMode::Frames,
            ..Default::default()
        })),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(observer),
            ..Default::default()
        },
    )?;
    let after = (WARM_FRAMES + frames) as u64;
    let settled = phases::run_past_settling(&pipeline, &count, after, u64::MAX, || {});
    let tuned = pipeline.stats.layout().map(|l| l.tried).unwrap_or_default();
    pipeline.stop();
    let report = pipeline.wait();
    report.ingest?;
    report.inference?;
    let marks = marks.lock().map_err(|_| BenchError::Panicked("observer"))?;
    let from = settled.unwrap_or(0) as usize + WARM_FRAMES;
    let to = (from + frames).min(marks.len());
    if to < from + 2 {
        return Err(BenchError::NoFrames);
    }
    let span = marks[to - 1].duration_since(marks[from]).as_secs_f64();
    let l = slot.load().layout();
    Ok(LayoutRow {
        layout: String::new(),
        instances: l.instances,
        threads: l.threads,
        fps: round1((to - from - 1) as f64 / span.max(1e-9)),
        over_limit: 0.0,
        frames: to - from,
        peak_rss_mb: 0.0,
        tuned,
    })
}

/// The table `bench --layouts` prints.
pub fn table(r: &LayoutsReport) -> String {
    let mut out = format!(
        "{} on {} ({} cores): 1-thread inference {:.2} ms, decode {:.2} ms, preprocess {:.2} ms per frame -> limit {:.1} fps\n",
        r.model, r.backend, r.cores, r.infer_1t_ms, r.decode_ms, r.preprocess_ms, r.limit_fps
    );
    out.push_str(
        "| layout | served | fps | / limit | frames | peak RSS MB |\n|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        out.push_str(&format!(
            "| {} | {}x{} | {:.1} | {:.3} | {} | {:.1} |\n",
            row.layout,
            row.instances,
            row.threads,
            row.fps,
            row.over_limit,
            row.frames,
            row.peak_rss_mb
        ));
    }
    if let Some(auto) = r.rows.iter().find(|x| !x.tuned.is_empty()) {
        let t: Vec<String> = auto
            .tuned
            .iter()
            .map(|f| format!("{}x{} {:.1} fps", f.instances, f.threads, f.fps))
            .collect();
        out.push_str(&format!("auto tuning measured: {}\n", t.join(", ")));
    }
    out
}
