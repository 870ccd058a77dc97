//! `edgelens bench`: honest numbers, measured side by side in one process.
//! For each backend: decode+scale alone, the bare inference ceiling on a real frame,
//! then the full pipeline, with per-stage percentiles, CPU time and peak RSS.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use edgelens::engine::{preprocess, DetectionFilter, Engine, EngineOptions, StageTimes};
use edgelens::ingest::{FrameQueue, Ingest, IngestConfig, IngestStats, Mode};
use edgelens::pipeline::{LiveSettings, Pipeline, PipelineOptions};
use edgelens::publish::CountingSink;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model folder holding model.toml.
    #[arg(long, default_value = "models/ssdlite-person")]
    model: PathBuf,
    /// Backends to compare (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "ort,tract")]
    backend: Vec<String>,
    /// Video to decode (any source works; live sources fail fast here).
    #[arg(long, default_value = "samples/vtest.mp4")]
    video: String,
    /// Frames per phase.
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Intra-op threads per backend.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where bench.json and bench.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// No progress bars (CI logs).
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p95: f64,
    p99: f64,
}

#[derive(Debug, Serialize)]
struct BackendResult {
    backend: String,
    threads: usize,
    load_ms: f64,
    decode_fps: f64,
    ceiling_fps: f64,
    /// Per-call times of the bare backend on one ready tensor.
    ceiling_ms: Percentiles,
    pipeline_fps: f64,
    pipeline_over_ceiling: f64,
    /// Pipeline start to the first inferred frame (GStreamer preroll, first decode).
    startup_ms: f64,
    frames: u64,
    dropped: u64,
    preprocess_ms: Percentiles,
    infer_ms: Percentiles,
    decode_nms_ms: Percentiles,
    frame_to_sink_ms: Percentiles,
    cpu_s_per_frame: f64,
    peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    model_version: String,
    video: String,
    frames: u64,
    host: String,
    cores: usize,
    results: Vec<BackendResult>,
}

fn ms_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds")
}

fn pct(h: &Histogram<u64>) -> Percentiles {
    let q = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0
        }
    };
    Percentiles {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    }
}

fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
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

/// User+system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Peak RSS since the last reset, in MB (Linux VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.frames >= 10, "--frames must be at least 10");
    let overrides = Default::default();
    let spec = edgelens::ingest::resolve(&args.video, &overrides, None)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut results = Vec::new();
    let mut model_name = String::new();
    let mut model_version = String::new();
    for backend in &args.backend {
        reset_peak_rss();
        let t0 = Instant::now();
        let engine = Engine::load(
            &args.model,
            &EngineOptions {
                backend: Some(backend.clone()),
                threads: args.threads,
            },
        )
        .with_context(|| format!("backend {backend}"))?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        model_name = engine.model().manifest.name.clone();
        model_version = engine.model().manifest.version.clone();

        // 1. Decode + scale alone, and keep one real frame for the ceiling.
        let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
        config.mode = Mode::Lossless;
        config.fail_fast = true;
        let (decode_fps, sample) = decode_only(&config, args.frames, args.quiet)?;

        // 2. The ceiling: the same backend on a ready tensor, tight loop.
        let tensor = preprocess::to_tensor(&sample, engine.input_spec().color, engine.input_spec());
        for _ in 0..3 {
            engine.infer_only(&tensor)?;
        }
        // Half before and half after the pipeline: load drift on a shared box hits both alike.
        let half = args.frames / 2;
        let mut ceiling_hist = ms_hist();
        let mut ceiling_time = |n: u64| -> anyhow::Result<Duration> {
            let pb = progress(args.quiet, n, &format!("{backend}: ceiling"));
            let t = Instant::now();
            for _ in 0..n {
                let one = Instant::now();
                engine.infer_only(&tensor)?;
                let _ = ceiling_hist.record((one.elapsed().as_micros() as u64).max(1));
                pb.inc(1);
            }
            pb.finish_and_clear();
            Ok(t.elapsed())
        };
        let before = ceiling_time(half)?;

        // 3. The full pipeline, stopped after `frames` inferred frames.
        let engine = Arc::new(ArcSwap::from_pointee(engine));
        let r = full_pipeline(config, engine.clone(), args.frames, args.quiet, backend)?;
        let after = {
            let e = engine.load_full();
            let pb = progress(
                args.quiet,
                args.frames - half,
                &format!("{backend}: ceiling"),
            );
            let t = Instant::now();
            for _ in 0..(args.frames - half) {
                let one = Instant::now();
                e.infer_only(&tensor)?;
                let _ = ceiling_hist.record((one.elapsed().as_micros() as u64).max(1));
                pb.inc(1);
            }
            pb.finish_and_clear();
            t.elapsed()
        };
        let ceiling_fps = args.frames as f64 / (before + after).as_secs_f64();
        // Steady state, first to last inferred frame: the ceiling excludes warm-up too.
        let pipeline_fps = (r.frames.saturating_sub(1)) as f64 / r.steady.as_secs_f64().max(1e-9);
        results.push(BackendResult {
            backend: backend.clone(),
            threads: args.threads,
            load_ms: (load_ms * 10.0).round() / 10.0,
            decode_fps: round1(decode_fps),
            ceiling_fps: round1(ceiling_fps),
            ceiling_ms: pct(&ceiling_hist),
            pipeline_fps: round1(pipeline_fps),
            pipeline_over_ceiling: (pipeline_fps / ceiling_fps * 1000.0).round() / 1000.0,
            startup_ms: round1(r.startup.as_secs_f64() * 1e3),
            frames: r.frames,
            dropped: r.dropped,
            preprocess_ms: pct(&r.preprocess),
            infer_ms: pct(&r.infer),
            decode_nms_ms: pct(&r.decode),
            frame_to_sink_ms: pct(&r.latency),
            cpu_s_per_frame: (r.cpu_s / r.frames.max(1) as f64 * 1e4).round() / 1e4,
            peak_rss_mb: round1(peak_rss_mb()),
        });
    }
    let report = Report {
        model: model_name,
        model_version,
        video: args.video.clone(),
        frames: args.frames,
        host: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        results,
    };
    print_table(&report);
    let json_path = args.out.join("bench.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let png_path = args.out.join("bench.png");
    chart(&report, &png_path).with_context(|| format!("cannot draw {}", png_path.display()))?;
    eprintln!("wrote {} and {}", json_path.display(), png_path.display());
    Ok(ExitCode::SUCCESS)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn decode_only(config: &IngestConfig, frames: u64, quiet: bool) -> anyhow::Result<(f64, Vec<u8>)> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
    while n < frames {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(f) => {
                // Time from the first frame: pipeline start-up is not decode throughput.
                started.get_or_insert_with(Instant::now);
                if first.is_none() {
                    first = Some(f.pixels);
                }
                n += 1;
                pb.inc(1);
            }
            Err(_) => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop(rx);
    pb.finish_and_clear();
    let ingest_result = handle
        .join()
        .map_err(|_| anyhow::anyhow!("ingest thread panicked"))?;
    ingest_result?;
    let sample = first.context("the source produced no frames")?;
    let elapsed = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    let fps = if elapsed > 0.0 {
        (n - 1) as f64 / elapsed
    } else {
        0.0
    };
    if n < frames {
        tracing::warn!(got = n, wanted = frames, "video shorter than --frames");
    }
    Ok((fps, sample))
}

struct PipelineRun {
    frames: u64,
    dropped: u64,
    startup: Duration,
    steady: Duration,
    cpu_s: f64,
    preprocess: Histogram<u64>,
    infer: Histogram<u64>,
    decode: Histogram<u64>,
    latency: Histogram<u64>,
}

fn full_pipeline(
    config: IngestConfig,
    engine: Arc<ArcSwap<Engine>>,
    frames: u64,
    quiet: bool,
    backend: &str,
) -> anyhow::Result<PipelineRun> {
    let hist = Arc::new(Mutex::new((ms_hist(), ms_hist(), ms_hist())));
    let count = Arc::new(AtomicU64::new(0));
    // (first, last) frame completion times.
    let marks: Arc<Mutex<(Option<Instant>, Option<Instant>)>> = Arc::new(Mutex::new((None, None)));
    let pb = progress(quiet, frames, &format!("{backend}: pipeline"));
    let observer = {
        let hist = hist.clone();
        let count = count.clone();
        let pb = pb.clone();
        let marks = marks.clone();
        Arc::new(
            move |_msg: &edgelens::message::InferenceMessage, t: &StageTimes| {
                if count.load(Ordering::Relaxed) < frames {
                    if let Ok(mut m) = marks.lock() {
                        let now = Instant::now();
                        m.0.get_or_insert(now);
                        m.1 = Some(now);
                    }
                }
                if let Ok(mut h) = hist.lock() {
                    let us = |d: Duration| (d.as_micros() as u64).max(1);
                    let _ = h.0.record(us(t.preprocess));
                    let _ = h.1.record(us(t.infer));
                    let _ = h.2.record(us(t.decode));
                }
                count.fetch_add(1, Ordering::Relaxed);
                pb.inc(1);
            },
        )
    };
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let pipeline = Pipeline::start(
        config,
        engine,
        Arc::new(ArcSwap::from_pointee(LiveSettings {
            filter: DetectionFilter::default(),
            max_fps: None,
            source_name: "bench".into(),
            ..Default::default()
        })),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(observer),
            ..Default::default()
        },
    )?;
    while count.load(Ordering::Relaxed) < frames && !pipeline.is_finished() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let cpu_s = cpu_seconds() - cpu0;
    pipeline.stop();
    let stats = pipeline.stats.clone();
    let report = pipeline.wait();
    pb.finish_and_clear();
    report.ingest?;
    let n = count.load(Ordering::Relaxed).min(frames);
    let (first, last) = marks.lock().map(|m| *m).unwrap_or((None, None));
    let startup = first.map(|f| f.duration_since(t0)).unwrap_or_default();
    let steady = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    let latency = stats
        .histograms
        .lock()
        .map(|h| h.latency.clone())
        .unwrap_or_else(|_| ms_hist());
    let (preprocess, infer, decode) = hist
        .lock()
        .map(|h| (h.0.clone(), h.1.clone(), h.2.clone()))
        .unwrap_or_else(|_| (ms_hist(), ms_hist(), ms_hist()));
    Ok(PipelineRun {
        frames: n,
        dropped: stats.ingest.frames_dropped.load(Ordering::Relaxed),
        startup,
        steady,
        cpu_s,
        preprocess,
        infer,
        decode,
        latency,
    })
}

fn print_table(r: &Report) {
    println!(
        "model {} v{} | video {} | {} frames | {} cores {}",
        r.model, r.model_version, r.video, r.frames, r.cores, r.host
    );
    println!(
        "{:<10} {:>3} {:>9} {:>9} {:>8} {:>9} {:>6} {:>8} {:>17} {:>17} {:>17} {:>20} {:>8} {:>8}",
        "backend",
        "thr",
        "decode",
        "ceiling",
        "ceil p50",
        "pipeline",
        "ratio",
        "start ms",
        "pre p50/95/99",
        "infer p50/95/99",
        "dec+nms p50/95/99",
        "frame>sink p50/95/99",
        "cpu s/f",
        "rss MB"
    );
    let p = |p: &Percentiles| format!("{:.2}/{:.2}/{:.2}", p.p50, p.p95, p.p99);
    for b in &r.results {
        println!(
            "{:<10} {:>3} {:>9.1} {:>9.1} {:>8.2} {:>9.1} {:>6.3} {:>8.0} {:>17} {:>17} {:>17} {:>20} {:>8.4} {:>8.1}",
            b.backend,
            b.threads,
            b.decode_fps,
            b.ceiling_fps,
            b.ceiling_ms.p50,
            b.pipeline_fps,
            b.pipeline_over_ceiling,
            b.startup_ms,
            p(&b.preprocess_ms),
            p(&b.infer_ms),
            p(&b.decode_nms_ms),
            p(&b.frame_to_sink_ms),
            b.cpu_s_per_frame,
            b.peak_rss_mb
        );
    }
}

fn chart(r: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let font: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("cannot load the chart font"))?;
    let root = BitMapBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = r
        .results
        .iter()
        .flat_map(|b| [b.decode_fps, b.ceiling_fps, b.pipeline_fps])
        .fold(1.0f64, f64::max)
        * 1.15;
    let n = r.results.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "edgelens bench: {} ({} frames, {} cores)",
                r.model, r.frames, r.cores
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(56)
        // Decode runs 10-100x faster than inference: a log axis keeps both readable.
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (1f64..max).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            r.results
                .get(x.round().max(0.0) as usize)
                .filter(|_| (x - x.round()).abs() < 1e-6)
                .map(|b| format!("{} ({} thr)", b.backend, b.threads))
                .unwrap_or_default()
        })
        .y_desc("frames per second (log)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let series = [
        ("decode+scale", RGBColor(120, 120, 120)),
        ("inference ceiling", RGBColor(56, 140, 255)),
        ("full pipeline", RGBColor(255, 120, 40)),
    ];
    for (k, (name, color)) in series.into_iter().enumerate() {
        let bars = r.results.iter().enumerate().map(|(i, b)| {
            let v = [b.decode_fps, b.ceiling_fps, b.pipeline_fps][k];
            let x0 = i as f64 - 0.39 + k as f64 * 0.26;
            Rectangle::new([(x0, 1.0), (x0 + 0.24, v.max(1.0))], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
