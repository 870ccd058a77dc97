use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::Args;

use edgelens::engine::{DetectionFilter, Engine, EngineOptions};
use edgelens::ingest::{self, IngestConfig, Mode};
use edgelens::pipeline::{LiveSettings, Pipeline, PipelineOptions};
use edgelens::publish::{mqtt::MqttSink, stdout::StdoutSink, Sink};

#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// A video file, rtsp:// URL, /dev/videoN, or a preset name (file, rtsp, usb, test).
    #[arg(long, default_value = "samples/vtest.mp4")]
    pub source: String,
    /// Fill a preset placeholder, e.g. --set pattern=smpte (repeatable).
    #[arg(long = "set", value_parser = parse_kv)]
    pub set: Vec<(String, String)>,
    /// A raw gst-launch description producing raw video; replaces --source.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// With --pipeline: treat the source as live (newest frame wins, reconnect on failure).
    #[arg(long)]
    pub live: bool,
    /// Extra presets folder (*.toml), added to the built-in ones.
    #[arg(long)]
    pub presets: Option<PathBuf>,
    /// Pace file sources at their own frame rate instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Model folder holding model.toml.
    #[arg(long, default_value = "models/ssdlite-person")]
    pub model: PathBuf,
    /// Inference backend (ort, tract, tensorflow); default: the first the manifest lists.
    #[arg(long)]
    pub backend: Option<String>,
    /// Intra-op threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Override the manifest's confidence threshold.
    #[arg(long)]
    pub min_confidence: Option<f32>,
    /// Keep only these labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Infer at most this many frames per second (others are skipped, and counted).
    #[arg(long)]
    pub max_fps: Option<f32>,
    /// Publish to an MQTT broker instead of stdout, e.g. mqtt://127.0.0.1:1883.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// MQTT topic for --mqtt.
    #[arg(long, default_value = "edgelens/detections")]
    pub topic: String,
    /// Messages kept while the broker is unreachable; beyond it the oldest are dropped.
    #[arg(long, default_value_t = 10_000)]
    pub queue: usize,
    /// Prometheus /metrics address, or "off".
    #[arg(long, default_value = "0.0.0.0:9600")]
    pub metrics_addr: String,
    /// Source name used in messages (default: derived from --source).
    #[arg(long)]
    pub name: Option<String>,
    /// Module mode: where downloaded models are cached.
    #[arg(long, env = "EDGELENS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Module mode: largest model download accepted, in MB.
    #[arg(long, default_value_t = 512)]
    pub max_model_mb: u64,
    /// Module mode: how often stats go to reported properties, in seconds.
    #[arg(long, env = "EDGELENS_STATS_INTERVAL_SECS", default_value_t = 60)]
    pub stats_interval: u64,
    /// Never enter module mode, even when IoT Edge variables are present.
    #[arg(long)]
    pub no_module: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

pub fn resolve_source(args: &SourceArgs) -> anyhow::Result<ingest::SourceSpec> {
    Ok(match &args.pipeline {
        Some(desc) => ingest::raw(desc, args.live, "pipeline"),
        None => {
            let overrides: BTreeMap<String, String> = args.set.iter().cloned().collect();
            ingest::resolve(&args.source, &overrides, args.presets.as_deref())?
        }
    })
}

pub fn load_engine(args: &ModelArgs) -> anyhow::Result<Engine> {
    Ok(Engine::load(
        &args.model,
        &EngineOptions {
            backend: args.backend.clone(),
            threads: args.threads,
        },
    )?)
}

/// Module mode: EdgeHub publishing and the twin as control plane.
fn run_module(args: RunArgs) -> anyhow::Result<ExitCode> {
    let params: BTreeMap<String, String> = args.source.set.iter().cloned().collect();
    let (mut initial, models_dir) = edgelens::control::initial_config(
        &args.model.model,
        args.model.backend.clone(),
        args.model.threads,
        &args.source.source,
        params,
    );
    if args.min_confidence.is_some() || !args.classes.is_empty() {
        initial.detection = Some(edgelens::control::config::DetectionConfig {
            min_confidence: args.min_confidence.map(f64::from),
            classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
        });
    }
    let metrics =
        if args.metrics_addr == "off" {
            None
        } else {
            Some(args.metrics_addr.parse().with_context(|| {
                format!("--metrics-addr '{}' is not HOST:PORT", args.metrics_addr)
            })?)
        };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    edgelens::control::run_module(
        edgelens::control::ModuleOptions {
            initial,
            models_dir,
            cache_dir: args
                .cache_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("edgelens-models")),
            max_model_bytes: args.max_model_mb * 1024 * 1024,
            queue_capacity: args.queue,
            stats_interval: Duration::from_secs(args.stats_interval.max(1)),
            presets_dir: args.source.presets.clone(),
            metrics,
            realtime: args.source.realtime,
        },
        stop,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if edgelens::edgehub::ModuleIdentity::present() && !args.no_module && args.mqtt.is_none() {
        return run_module(args);
    }
    if let Some(c) = args.min_confidence {
        edgelens::engine::check_min_confidence(c)
            .map_err(|e| anyhow::anyhow!("--min-confidence {e}"))?;
    }
    if let Some(f) = args.max_fps {
        anyhow::ensure!(f > 0.0, "--max-fps must be > 0, got {f}");
    }
    let spec = resolve_source(&args.source)?;
    let engine = load_engine(&args.model)?;
    let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
    if args.source.realtime && !spec.live {
        config.mode = Mode::Realtime;
    }
    let sink: Box<dyn Sink> = match &args.mqtt {
        Some(url) => Box::new(MqttSink::connect(
            url,
            &args.topic,
            &format!("edgelens-{}", std::process::id()),
            args.queue,
        )?),
        None => Box::new(StdoutSink::default()),
    };
    let settings = Arc::new(ArcSwap::from_pointee(LiveSettings {
        filter: DetectionFilter {
            min_confidence: args.min_confidence,
            classes: args.classes.clone(),
        },
        max_fps: args.max_fps,
        source_name: args.name.clone().unwrap_or_else(|| spec.name.clone()),
    }));
    let pipeline = Pipeline::start(
        config,
        Arc::new(ArcSwap::from_pointee(engine)),
        settings,
        sink,
        PipelineOptions::default(),
    )?;
    if args.metrics_addr != "off" {
        let addr: SocketAddr = args
            .metrics_addr
            .parse()
            .with_context(|| format!("--metrics-addr '{}' is not HOST:PORT", args.metrics_addr))?;
        let stats = pipeline.stats.clone();
        let bound = edgelens::metrics::serve(addr, Arc::new(move || stats.prometheus_text()))
            .with_context(|| {
                format!("cannot serve metrics on {addr} (port taken? use --metrics-addr)")
            })?;
        tracing::info!(%bound, "metrics on /metrics");
    }
    let stop = pipeline.stop_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    tracing::info!(source = %spec.name, preset = %spec.preset, live = spec.live, "running");
    while !pipeline.is_finished() && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    pipeline.stop();
    let stats = pipeline.stats.clone();
    let report = pipeline.wait();
    let snap = stats.snapshot();
    tracing::info!(
        frames = snap.frames_in,
        inferred = snap.frames_inferred,
        dropped = snap.dropped,
        skipped = snap.skipped,
        messages = snap.messages,
        undelivered = report.undelivered,
        "stopped"
    );
    report.ingest?;
    Ok(if report.undelivered > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
