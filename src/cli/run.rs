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

use edgelens::engine::{DetectionFilter, Engine, EngineOptions, LayoutRequest};
use edgelens::ingest::{self, IngestConfig, Mode};
use edgelens::mqtt::QueueLimits;
use edgelens::pipeline::{LiveSettings, OutputMode, Pipeline, PipelineOptions, SourceInput};
use edgelens::publish::{session::SessionSink, stdout::StdoutSink, Sink};

#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// A video file, rtsp:// URL, /dev/videoN, or a preset name (file, rtsp, usb, test).
    /// Repeat for several sources served by one model in fair turns; NAME=URI names one
    /// (its messages' `source`), else it is named after the uri's last part.
    #[arg(long, default_value = edgelens::defaults::SOURCE)]
    pub source: Vec<String>,
    /// Fill a preset placeholder, e.g. --set pattern=smpte (repeatable; every source).
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
    #[arg(long, default_value = edgelens::defaults::MODEL_DIR)]
    pub model: PathBuf,
    /// Inference backend (ort, tract, tensorflow); default: the first the manifest lists.
    #[arg(long)]
    pub backend: Option<String>,
    /// Intra-op threads per engine instance, or `auto` (tuned with --instances on the stream).
    #[arg(long, default_value = "auto", value_parser = threads_arg)]
    pub threads: usize,
    /// Engine instances working on consecutive frames (output stays in frame order), or `auto`.
    #[arg(long, default_value = "auto", value_parser = instances_arg)]
    pub instances: usize,
}

/// `auto` (0) or 1..=64.
pub fn threads_arg(s: &str) -> Result<usize, String> {
    edgelens::engine::layout::parse_count(s, edgelens::engine::layout::MAX_THREADS)
}

/// `auto` (0) or 1..=16.
pub fn instances_arg(s: &str) -> Result<usize, String> {
    edgelens::engine::layout::parse_count(s, edgelens::engine::layout::MAX_INSTANCES)
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
    #[arg(long, default_value = edgelens::defaults::MQTT_TOPIC)]
    pub topic: String,
    /// Messages kept while the broker is unreachable; beyond it the oldest are dropped.
    #[arg(long, default_value_t = edgelens::defaults::QUEUE_MESSAGES)]
    pub queue: usize,
    /// MiB kept while the broker is unreachable; beyond it the oldest are dropped.
    #[arg(long, default_value_t = edgelens::defaults::QUEUE_MB)]
    pub queue_mb: u64,
    /// Prometheus /metrics address, or "off".
    #[arg(long, default_value = edgelens::defaults::METRICS_ADDR)]
    pub metrics_addr: String,
    /// Source name used in messages (default: derived from --source).
    #[arg(long)]
    pub name: Option<String>,
    /// Module mode: where downloaded models are cached.
    #[arg(long, env = "EDGELENS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Module mode: largest model download accepted, in MB.
    #[arg(long, default_value_t = edgelens::defaults::MAX_MODEL_MB)]
    pub max_model_mb: u64,
    /// Module mode: whole-download deadline for a model archive, in seconds.
    #[arg(long, default_value_t = edgelens::defaults::MODEL_FETCH_TIMEOUT.as_secs())]
    pub model_fetch_timeout: u64,
    /// Module mode: the model cache's size bound in MB (least recently used first; the
    /// serving model is never evicted).
    #[arg(long, default_value_t = edgelens::defaults::MODEL_CACHE_MB)]
    pub model_cache_mb: u64,
    /// Module mode: how often stats go to reported properties, in seconds.
    #[arg(long, env = "EDGELENS_STATS_INTERVAL_SECS", default_value_t = edgelens::defaults::STATS_INTERVAL_SECS)]
    pub stats_interval: u64,
    /// Never enter module mode, even when IoT Edge variables are present.
    #[arg(long)]
    pub no_module: bool,
    /// What to publish: frames (a message per frame with detections), events (track events
    /// and counts), or both. Default: frames on stdout, events with --mqtt and in module mode.
    #[arg(long)]
    pub output_mode: Option<OutputMode>,
    /// Zones and lines (JSON, the twin's schema), e.g. {"zones": {"door": {"polygon": ...}}},
    /// for every source. NAME=FILE gives source NAME (a --source name) its own instead; it
    /// then runs only those (not merged with the shared file). Repeatable.
    #[arg(long, value_name = "[NAME=]FILE")]
    pub zones: Vec<String>,
    /// Write each track's best snapshot as JPEG under this folder.
    #[arg(long)]
    pub snapshots: Option<PathBuf>,
    /// With --snapshots: also write the box alone as `<track-id>-crop.jpg` beside each
    /// snapshot (the live view's event thumbnails then show the object, not the whole frame).
    #[arg(long, requires = "snapshots")]
    pub snapshot_crop: bool,
    /// Tracker: bytetrack (default), sort or iou.
    #[arg(long, default_value = edgelens::defaults::TRACKER)]
    pub tracker: String,
    /// Blob container for snapshot uploads (used when EDGELENS_BLOB_CONNECTION_STRING is set).
    #[arg(long, default_value = edgelens::defaults::SNAPSHOT_CONTAINER)]
    pub blob_container: String,
    /// Live view and zone editor on HOST:PORT (`--ui` alone: 127.0.0.1:9601). Off by default;
    /// in module mode set it in the deployment's createOptions (read-only there).
    #[arg(long, env = "EDGELENS_UI", num_args = 0..=1, default_missing_value = edgelens::defaults::UI_ADDR)]
    pub ui: Option<String>,
    /// Live view: pictures per second at most, drawn only while someone watches.
    #[arg(long, env = "EDGELENS_UI_FPS", default_value_t = edgelens::defaults::UI_FPS)]
    pub ui_fps: f32,
}

/// The CLI's scene settings: output mode (defaulted), zones, tracker and snapshots, checked
/// before anything starts.
pub struct SceneArgs {
    pub output_mode: OutputMode,
    pub scene: edgelens::scene::SceneConfig,
    /// `--zones NAME=FILE`: a source's own zones and lines, by source key (`default` for a
    /// single source), with the shared knobs.
    pub own: BTreeMap<String, edgelens::scene::SceneConfig>,
    pub snapshots: Option<edgelens::snapshot::SnapshotSettings>,
}

/// Stdout defaults to frames (a person reading `make run` sees every detection at once);
/// a broker defaults to events, what a hub's daily quota allows.
pub fn scene_args(args: &RunArgs) -> anyhow::Result<SceneArgs> {
    let output_mode = args.output_mode.unwrap_or(if args.mqtt.is_some() {
        OutputMode::Events
    } else {
        OutputMode::Frames
    });
    let (scene, own) =
        super::sources::load_zones(&args.zones, &args.source.source, args.name.as_deref())?;
    edgelens::track::by_name(&args.tracker, edgelens::track::TrackerConfig::default())
        .context("--tracker")?;
    edgelens::snapshot::ContainerName::parse(&args.blob_container).context("--blob-container")?;
    let snapshots = args
        .snapshots
        .as_ref()
        .map(|root| edgelens::snapshot::SnapshotSettings {
            root: root.clone(),
            retention: edgelens::snapshot::Retention::default(),
            crop: args.snapshot_crop,
            container: args.blob_container.clone(),
        });
    Ok(SceneArgs {
        output_mode,
        scene,
        own,
        snapshots,
    })
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
            let (name, uri) = super::sources::single(&args.source);
            let mut spec = ingest::resolve(&uri, &overrides, args.presets.as_deref())?;
            if let Some(n) = name {
                spec.name = n;
            }
            spec
        }
    })
}

/// Every `--source` as a pipeline source, named (several sources).
fn source_inputs(args: &SourceArgs, engine: &Engine) -> anyhow::Result<Vec<SourceInput>> {
    anyhow::ensure!(
        args.pipeline.is_none(),
        "--pipeline replaces --source: give one or the other"
    );
    let overrides: BTreeMap<String, String> = args.set.iter().cloned().collect();
    super::sources::named(&args.source)
        .into_iter()
        .map(|(name, uri)| {
            let spec = ingest::resolve(&uri, &overrides, args.presets.as_deref())
                .with_context(|| format!("--source {name}"))?;
            let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
            if args.realtime && !spec.live {
                config.mode = Mode::Realtime;
            }
            Ok(SourceInput {
                name,
                message_name: None,
                config,
                max_fps: None,
            })
        })
        .collect()
}

pub fn load_engine(args: &ModelArgs) -> anyhow::Result<Engine> {
    let model = edgelens::model::Model::load(&args.model)?;
    Ok(Engine::from_model_layout(
        model,
        &EngineOptions {
            backend: args.backend.clone(),
            threads: args.threads,
        },
        LayoutRequest::from_counts(args.instances, args.threads),
    )?)
}

/// `--metrics-addr`: HOST:PORT, or "off".
pub fn metrics_addr(v: &str) -> anyhow::Result<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .with_context(|| format!("--metrics-addr '{v}' is not HOST:PORT (or off)"))
}

pub fn queue_limits(args: &RunArgs) -> QueueLimits {
    QueueLimits {
        messages: args.queue.max(1),
        bytes: usize::try_from(args.queue_mb.max(1).saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX),
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if edgelens::edgehub::ModuleIdentity::present() && !args.no_module && args.mqtt.is_none() {
        return super::module::run(args);
    }
    if let Some(c) = args.min_confidence {
        edgelens::engine::check_min_confidence(c)
            .map_err(|e| anyhow::anyhow!("--min-confidence {e}"))?;
    }
    if let Some(f) = args.max_fps {
        let min = edgelens::defaults::MIN_MAX_FPS;
        anyhow::ensure!(
            f64::from(f) >= min,
            "--max-fps must be at least {min}, got {f}"
        );
    }
    let mut scene = scene_args(&args)?;
    let several = args.source.source.len() > 1;
    anyhow::ensure!(
        !(several && args.name.is_some()),
        "--name names a single source; with several, name each: --source NAME=URI"
    );
    let spec = if several {
        None
    } else {
        Some(resolve_source(&args.source)?)
    };
    let engine = load_engine(&args.model)?;
    let inputs = match &spec {
        Some(_) => Vec::new(),
        None => source_inputs(&args.source, &engine)?,
    };
    let sink: Box<dyn Sink> = match &args.mqtt {
        Some(url) => Box::new(SessionSink::plain_mqtt(
            url,
            &args.topic,
            &format!("edgelens-{}", std::process::id()),
            queue_limits(&args),
        )?),
        None => Box::new(StdoutSink::default()),
    };
    let source_name = match (&args.name, &spec) {
        (Some(n), _) => n.clone(),
        (None, Some(s)) => s.name.clone(),
        (None, None) => String::new(),
    };
    let scenes = super::sources::local_scenes(&mut scene.scene, std::mem::take(&mut scene.own));
    let settings = Arc::new(ArcSwap::from_pointee(LiveSettings {
        filter: DetectionFilter {
            min_confidence: args.min_confidence,
            classes: args.classes.clone(),
        },
        max_fps: args.max_fps,
        source_name: source_name.clone(),
        output_mode: scene.output_mode,
        scene: Arc::new(scene.scene),
        scenes,
    }));
    let ui = super::ui::start_ui(
        &args,
        &source_name,
        Some(edgelens::ui::local_control(settings.clone())),
    )?;
    let options = PipelineOptions {
        tracker_name: args.tracker.clone(),
        snapshots: scene.snapshots,
        ui,
        ..Default::default()
    };
    let engine = Arc::new(ArcSwap::from_pointee(engine));
    let pipeline = match &spec {
        Some(spec) => {
            let mut config = IngestConfig::for_model(spec.clone(), engine.load().input_spec());
            if args.source.realtime && !spec.live {
                config.mode = Mode::Realtime;
            }
            Pipeline::start(config, engine, settings, sink, options)?
        }
        None => Pipeline::start_sources(inputs, engine, settings, sink, options)?,
    };
    if let Some(addr) = metrics_addr(&args.metrics_addr)? {
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
    match &spec {
        Some(spec) => {
            tracing::info!(source = %spec.name, preset = %spec.preset, live = spec.live, "running")
        }
        None => tracing::info!(sources = ?pipeline.source_names(), "running"),
    }
    while !pipeline.is_finished() && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    pipeline.stop();
    let stats = pipeline.stats.clone();
    let report = pipeline.wait();
    let snap = stats.snapshot();
    let track_us = stats
        .histograms
        .lock()
        .map(|h| {
            (
                h.track.value_at_quantile(0.5),
                h.track.value_at_quantile(0.99),
            )
        })
        .unwrap_or_default();
    tracing::info!(
        track_p50_us = track_us.0,
        track_p99_us = track_us.1,
        frames = snap.frames_in,
        inferred = snap.frames_inferred,
        dropped = snap.dropped,
        skipped = snap.skipped,
        messages = snap.messages,
        undelivered = report.undelivered,
        "stopped"
    );
    report.ingest?;
    report.inference?;
    Ok(if report.undelivered > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
