//! `edgelens bench --streams 1,2,4,8`: N copies of the video as N sources of one pipeline
//! (one engine, fair turns), against N separate processes at 1 thread each started at the
//! same time, and against the machine limit. Every figure comes from the same run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::{phases, report::round1, sys, BenchError, Settings};
use crate::engine::{preprocess, Engine, EngineOptions, LayoutRequest};
use crate::ingest::{IngestConfig, Mode};
use crate::pipeline::{LiveSettings, OutputMode, Pipeline, PipelineOptions, SourceInput};
use crate::publish::CountingSink;

/// One line of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamsRow {
    pub streams: usize,
    /// The engine layout serving every stream, instances x threads (as tuned when auto).
    pub layout: String,
    pub aggregate_fps: f64,
    pub per_stream_fps: Vec<f64>,
    pub peak_rss_mb: f64,
    /// aggregate / limit.
    pub of_limit: f64,
    /// The same number of separate processes at 1 thread each, run together.
    pub separate_fps: Option<f64>,
    pub separate_rss_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamsReport {
    pub video: String,
    pub cores: usize,
    /// cores / (1-thread inference + decode + preprocess time per frame).
    pub limit_fps: f64,
    pub infer_ms_1t: f64,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub rows: Vec<StreamsRow>,
}

/// Runs every count in `counts`, one engine at `threads` intra-op threads, or by default in
/// the bench's layout (`--instances`/`--threads`, auto-tuned on the streams).
/// `alone`: this is a child process, measure one stream at 1 thread only (no limit, no
/// children).
pub fn run(
    s: &Settings,
    counts: &[usize],
    alone: bool,
    threads: Option<usize>,
) -> Result<StreamsReport, BenchError> {
    let spec = crate::ingest::resolve(&s.video, &Default::default(), None)?;
    let cores = sys::cores();
    let request = match (alone, threads) {
        (true, _) => LayoutRequest::from_counts(1, 1),
        (false, Some(t)) => LayoutRequest::from_counts(1, t.max(1)),
        (false, None) => LayoutRequest::from_counts(s.instances, s.threads),
    };
    let (limit_fps, infer_ms, decode_ms, pre_ms) = if alone {
        (0.0, 0.0, 0.0, 0.0)
    } else {
        limit(s, &spec, cores)?
    };
    let mut rows = Vec::new();
    for &n in counts {
        let (aggregate, per_stream, rss, layout) = in_one(s, &spec, n, request)?;
        let (separate_fps, separate_rss_mb) = if alone {
            (None, None)
        } else {
            let (f, r) = separate(s, n)?;
            (Some(round1(f)), Some(round1(r)))
        };
        rows.push(StreamsRow {
            streams: n,
            layout,
            aggregate_fps: round1(aggregate),
            per_stream_fps: per_stream.into_iter().map(round1).collect(),
            peak_rss_mb: round1(rss),
            of_limit: if limit_fps > 0.0 {
                (aggregate / limit_fps * 1000.0).round() / 1000.0
            } else {
                0.0
            },
            separate_fps,
            separate_rss_mb,
        });
    }
    Ok(StreamsReport {
        video: s.video.clone(),
        cores,
        limit_fps: round1(limit_fps),
        infer_ms_1t: (infer_ms * 100.0).round() / 100.0,
        decode_ms: (decode_ms * 100.0).round() / 100.0,
        preprocess_ms: (pre_ms * 100.0).round() / 100.0,
        rows,
    })
}

fn load(s: &Settings, threads: usize) -> Result<Engine, BenchError> {
    Engine::load(
        &s.model,
        &EngineOptions {
            backend: s.backends.first().cloned(),
            threads,
        },
    )
    .map_err(|source| BenchError::Engine {
        backend: s.backends.first().cloned().unwrap_or_default(),
        source,
    })
}

fn load_layout(s: &Settings, request: LayoutRequest) -> Result<Engine, BenchError> {
    let err = |source| BenchError::Engine {
        backend: s.backends.first().cloned().unwrap_or_default(),
        source,
    };
    let model = crate::model::Model::load(&s.model).map_err(|e| err(e.into()))?;
    let opts = EngineOptions {
        backend: s.backends.first().cloned(),
        threads: 1,
    };
    Engine::from_model_layout(model, &opts, request).map_err(err)
}

fn lossless(spec: &crate::ingest::SourceSpec, engine: &Engine) -> IngestConfig {
    let mut c = IngestConfig::for_model(spec.clone(), engine.input_spec());
    c.mode = Mode::Lossless;
    c.fail_fast = true;
    c
}

/// The machine limit (bench/limit.rs), measured for this stream table.
/// Returns (limit fps, infer, decode, pre ms).
fn limit(
    s: &Settings,
    spec: &crate::ingest::SourceSpec,
    cores: usize,
) -> Result<(f64, f64, f64, f64), BenchError> {
    let engine = load(s, 1)?;
    let decoded = phases::decode_only(&lossless(spec, &engine), s.frames, s.quiet)?;
    let sample = decoded.sample;
    let input = engine.input_spec();
    let t = Instant::now();
    let n = 50;
    let mut tensor = preprocess::to_tensor(&sample, input.color, input);
    for _ in 1..n {
        tensor = preprocess::to_tensor(&sample, input.color, input);
    }
    let pre_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut hist = super::report::us_hist();
    let pb = phases::progress(s.quiet, s.frames, "limit: 1-thread ceiling");
    let err = |source| BenchError::Engine {
        backend: engine.backend_name().to_string(),
        source,
    };
    engine.infer_only(&tensor).map_err(err)?;
    let took = phases::ceiling(&engine, &tensor, s.frames, &mut hist, pb).map_err(err)?;
    let infer_ms = took.as_secs_f64() * 1e3 / s.frames as f64;
    // The same definition as the main bench table (bench/limit.rs): decode as CPU time.
    let decode_ms = decoded.cpu_ms_per_frame;
    let limit = super::limit::machine_limit(cores, infer_ms, decode_ms, pre_ms);
    Ok((limit.fps, infer_ms, decode_ms, pre_ms))
}

/// Per source: frames seen and the first and last time one was inferred.
type Seen = BTreeMap<String, (u64, Option<Instant>, Option<Instant>)>;

/// `n` copies of the video in one pipeline; until every stream has `s.frames` inferred.
/// Returns (aggregate fps, per-stream fps, peak RSS MB, layout), over the common steady
/// window.
fn in_one(
    s: &Settings,
    spec: &crate::ingest::SourceSpec,
    n: usize,
    request: LayoutRequest,
) -> Result<(f64, Vec<f64>, f64, String), BenchError> {
    sys::reset_peak_rss();
    let engine = load_layout(s, request)?;
    let inputs: Vec<SourceInput> = (0..n)
        .map(|i| SourceInput {
            name: format!("s{i}"),
            message_name: None,
            config: lossless(spec, &engine),
            max_fps: None,
        })
        .collect();
    let seen = Arc::new(Mutex::new(Seen::new()));
    let observer = {
        let seen = seen.clone();
        Arc::new(move |m: &crate::message::InferenceMessage, _: &_| {
            if let Ok(mut all) = seen.lock() {
                let e = all.entry(m.source.clone()).or_default();
                let now = Instant::now();
                e.0 += 1;
                e.1.get_or_insert(now);
                e.2 = Some(now);
            }
        })
    };
    let pb = phases::progress(s.quiet, s.frames * n as u64, &format!("{n} streams in one"));
    let slot = Arc::new(ArcSwap::from_pointee(engine));
    let mut p = Pipeline::start_sources(
        inputs,
        slot.clone(),
        Arc::new(ArcSwap::from_pointee(LiveSettings {
            output_mode: OutputMode::Frames,
            ..Default::default()
        })),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(observer),
            ..Default::default()
        },
    )?;
    let done = |seen: &Seen| seen.len() == n && seen.values().all(|v| v.0 >= s.frames);
    loop {
        let all = seen.lock().map_err(|_| BenchError::Panicked("observer"))?;
        pb.set_position(all.values().map(|v| v.0.min(s.frames)).sum());
        if done(&all) || p.is_finished() {
            break;
        }
        drop(all);
        std::thread::sleep(Duration::from_millis(5));
    }
    let all = seen
        .lock()
        .map_err(|_| BenchError::Panicked("observer"))?
        .clone();
    p.stop();
    let failed = p.take_finished().into_iter().find_map(|(_, r)| r.err());
    p.wait();
    pb.finish_and_clear();
    if let Some(e) = failed {
        return Err(e.into());
    }
    let first = all.values().filter_map(|v| v.1).min();
    let last = all.values().filter_map(|v| v.2).max();
    let span = match (first, last) {
        (Some(f), Some(l)) if l > f => l.duration_since(f).as_secs_f64(),
        _ => return Err(BenchError::NoFrames),
    };
    let total: u64 = all.values().map(|v| v.0).sum();
    let per: Vec<f64> = all.values().map(|v| v.0 as f64 / span).collect();
    Ok((
        total.saturating_sub(1) as f64 / span,
        per,
        sys::peak_rss_mb(),
        slot.load().layout().to_string(),
    ))
}

/// `n` separate processes (this binary, `bench --streams 1 --streams-alone`, 1 thread
/// each) started together. Returns (sum of their fps, sum of their peak RSS MB).
fn separate(s: &Settings, n: usize) -> Result<(f64, f64), BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Write {
        path: "current_exe".into(),
        message: e.to_string(),
    })?;
    let dir = s.out.join("streams-separate");
    let children: Vec<_> = (0..n)
        .map(|i| {
            let out = dir.join(format!("{n}-{i}"));
            let mut c = std::process::Command::new(&exe);
            c.args(["bench", "--streams", "1", "--streams-alone", "--quiet"])
                .arg("--model")
                .arg(&s.model)
                .arg("--video")
                .arg(&s.video)
                .arg("--frames")
                .arg(s.frames.to_string())
                .arg("--out")
                .arg(&out)
                .stdout(std::process::Stdio::null());
            if let Some(b) = s.backends.first() {
                c.arg("--backend").arg(b);
            }
            c.spawn().map(|ch| (ch, out))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| BenchError::Write {
            path: exe.clone(),
            message: e.to_string(),
        })?;
    let (mut fps, mut rss) = (0.0, 0.0);
    for (mut child, out) in children {
        let ok = child.wait().map(|st| st.success()).unwrap_or(false);
        let row = read_row(&out.join("streams.json"));
        match (ok, row) {
            (true, Some(r)) => {
                fps += r.aggregate_fps;
                rss += r.peak_rss_mb;
            }
            _ => return Err(BenchError::Panicked("separate bench process")),
        }
    }
    Ok((fps, rss))
}

fn read_row(path: &Path) -> Option<StreamsRow> {
    let bytes = std::fs::read(path).ok()?;
    let r: StreamsReport = serde_json::from_slice(&bytes).ok()?;
    r.rows.into_iter().next()
}

/// The table `bench --streams` prints.
pub fn table(r: &StreamsReport) -> String {
    let mut t = format!(
        "video {} on {} cores; limit {:.1} fps = {} x 1000 / ({:.2} ms infer at 1 thread + {:.2} ms decode + {:.2} ms preprocess)\n",
        r.video, r.cores, r.limit_fps, r.cores, r.infer_ms_1t, r.decode_ms, r.preprocess_ms
    );
    let rss1 = r
        .rows
        .iter()
        .find(|x| x.streams == 1)
        .map(|x| x.peak_rss_mb);
    t.push_str("| streams | layout | aggregate fps | of limit | per-stream fps (min-max) | peak RSS MB | RSS / 1 stream | N processes x 1 thread fps | their RSS MB | one / N processes |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for x in &r.rows {
        let (lo, hi) = x
            .per_stream_fps
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = |a: f64, b: Option<f64>| {
            b.filter(|b| *b > 0.0)
                .map_or("-".to_string(), |b| format!("{:.2}", a / b))
        };
        t.push_str(&format!(
            "| {} | {} | {:.1} | {:.3} | {:.1}-{:.1} | {:.1} | {} | {} | {} | {} |\n",
            x.streams,
            x.layout,
            x.aggregate_fps,
            x.of_limit,
            lo,
            hi,
            x.peak_rss_mb,
            ratio(x.peak_rss_mb, rss1),
            opt(x.separate_fps),
            opt(x.separate_rss_mb),
            ratio(x.aggregate_fps, x.separate_fps),
        ));
    }
    t
}

/// Writes `streams.json` under `out`.
pub fn write(r: &StreamsReport, out: &Path) -> Result<std::path::PathBuf, BenchError> {
    let err = |path: &Path, e: &dyn std::fmt::Display| BenchError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| err(out, &e))?;
    let path = out.join("streams.json");
    let bytes = serde_json::to_vec_pretty(r).map_err(|e| err(&path, &e))?;
    std::fs::write(&path, bytes).map_err(|e| err(&path, &e))?;
    Ok(path)
}
