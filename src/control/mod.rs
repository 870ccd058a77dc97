//! The control plane: the module twin carries the whole runtime config. Desired documents
//! are validated as a whole and turned into a plan (`apply`), models load one at a time off
//! the hot path (`model_load`), and every outcome goes to reported properties (`report`).
//! This file keeps the run loop and the supervision of the source; `twin.rs` handles what
//! EdgeHub sends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::select;
use serde_json::{json, Value};

pub mod apply;
pub mod config;
pub mod model_fetch;
pub mod model_load;
pub mod report;
pub mod scenes;
pub mod sources;
mod supervise;
mod twin;
pub mod validate;

use crate::defaults;
use crate::edgehub::{self, topics, ModuleIdentity};
use crate::engine::{DetectionFilter, Engine};
use crate::ingest::{self, IngestConfig, SourceSpec};
use crate::mqtt::{ControlKind, QueueLimits, Session};
use crate::pipeline::{LiveSettings, Pipeline, PipelineOptions, SourceInput, Stats};
use crate::snapshot::SnapshotSettings;
use config::{DesiredConfig, ModelConfig};
use model_fetch::{FetchSettings, Fetcher};
use model_load::{Loader, ModelStatus};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    EdgeHub(#[from] edgehub::EdgeHubError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{0}")]
    Other(String),
}

pub struct ModuleOptions {
    /// The config before the twin says anything (from the command line): the base that the
    /// twin overrides field by field.
    pub initial: DesiredConfig,
    /// `--name`: the source's name in messages, instead of one derived from its uri.
    pub source_name: Option<String>,
    pub models_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub max_model_bytes: u64,
    /// Whole-download deadline for a model archive.
    pub fetch_timeout: Duration,
    /// The model cache's size bound (LRU, never evicting the serving model).
    pub cache_max_bytes: u64,
    pub queue: QueueLimits,
    pub stats_interval: Duration,
    pub presets_dir: Option<PathBuf>,
    pub metrics: Option<std::net::SocketAddr>,
    /// Pace file sources at their frame rate, like a camera.
    pub realtime: bool,
    /// Tracker registry name.
    pub tracker: String,
    /// `--snapshots DIR`: best snapshots per track go here (and to the twin's container).
    pub snapshots: Option<PathBuf>,
    /// `--snapshot-crop`: the box alone beside each snapshot.
    pub snapshot_crop: bool,
    /// The live view's tap (`--ui` in createOptions); the page is read-only here.
    pub ui: Option<Arc<crate::ui::Tap>>,
}

/// The twin GET in flight, and when to try again if it fails.
#[derive(Default)]
struct TwinGet {
    pending: Option<(String, Instant)>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

struct Module {
    identity: Arc<ModuleIdentity>,
    session: Session,
    opts: ModuleOptions,
    engine: Arc<ArcSwap<Engine>>,
    settings: Arc<ArcSwap<LiveSettings>>,
    output: Arc<ArcSwap<String>>,
    /// One stats object for the module's life: /metrics stays current and monotonic
    /// across source restarts.
    stats: Arc<Stats>,
    pipeline: Option<Pipeline>,
    /// Every source the config asks for, resolved, by name (`default` is `source`).
    sources: BTreeMap<String, SourceSpec>,
    /// The effective config; its model is the last one asked for.
    applied: DesiredConfig,
    /// The model config that serves now, its folder (pinned in the cache), and its status.
    serving: ModelConfig,
    serving_dir: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    serving_status: ModelStatus,
    /// The hub's desired document as the module knows it: the last twin GET with every patch
    /// since merged in, accepted or not. None until a twin GET answers.
    desired_doc: Option<Value>,
    /// The version of desired that the running config was validated from.
    desired_version: Option<i64>,
    model_status: ModelStatus,
    loader: Loader,
    rid: u64,
    twin_get: TwinGet,
    /// When to start the whole pipeline again (it could not start).
    restart_source_at: Option<Instant>,
    /// When to start a source again that ended or failed; the others run on.
    retry_at: BTreeMap<String, Instant>,
    /// Sources removed by the twin: reported stats are merged, so their entries are
    /// deleted with a null (bounded; a null for an absent key is harmless).
    gone_sources: Vec<String>,
    /// When to return freed heap to the OS after a model swap.
    trim_at: Option<Instant>,
    /// The engine layout last reported as `model.layout` (the tuner may change it).
    reported_layout: Option<crate::pipeline::LayoutReport>,
    /// Reported `config` as the hub holds it (from the twin GET, then what was sent): a new
    /// echo nulls what it no longer has, or removed sources would stay reported for good.
    reported_config: Value,
}

/// Runs the module until `stop` is set (SIGTERM).
pub fn run_module(mut opts: ModuleOptions, stop: Arc<AtomicBool>) -> Result<(), ControlError> {
    let identity = Arc::new(ModuleIdentity::from_env()?);
    tracing::info!(device = %identity.device, module = %identity.module, gateway = %identity.gateway, port = identity.port, "module mode");
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let session = edgehub::connect(&identity, opts.queue, events_tx)?;

    // Serve the command-line config at once; the twin may change it when it arrives.
    let mut model_cfg = opts.initial.model.clone().unwrap_or_default();
    let started = Instant::now();
    // The serving model's folder: cache eviction never removes it.
    let serving_dir = Arc::new(std::sync::Mutex::new(Vec::<PathBuf>::new()));
    let pinned = serving_dir.clone();
    let in_use: model_fetch::InUse =
        Arc::new(move || pinned.lock().map(|v| v.clone()).unwrap_or_default());
    let engine = model_load::load_model(&fetcher(&opts, in_use.clone()), &model_cfg)
        .map_err(ControlError::Other)?;
    if let Ok(mut d) = serving_dir.lock() {
        *d = vec![engine.model().dir.clone()];
    }
    // Name the backend the manifest picked, so a twin that names the same one is no change.
    model_cfg
        .backend
        .get_or_insert_with(|| engine.backend_name().to_string());
    opts.initial.model = Some(model_cfg.clone());
    let sources = sources::resolve(&opts.initial, &opts)?;
    let (load_tx, load_rx) = crossbeam_channel::unbounded();
    let loader = Loader::start(fetcher(&opts, in_use), load_tx)
        .map_err(|e| ControlError::Other(format!("cannot start the model loader: {e}")))?;
    let ready = ModelStatus::ready(&engine, started.elapsed().as_millis() as u64);
    let mut module = Module {
        model_status: ready.clone(),
        serving_status: ready,
        engine: Arc::new(ArcSwap::from_pointee(engine)),
        settings: Arc::new(ArcSwap::from_pointee(live_settings(
            &opts.initial,
            &sources,
        ))),
        output: Arc::new(ArcSwap::from_pointee(output_name(&opts.initial))),
        stats: Stats::new(Arc::new(ingest::IngestStats::default())),
        identity,
        session,
        applied: opts.initial.clone(),
        serving: model_cfg,
        serving_dir,
        desired_doc: None,
        desired_version: None,
        opts,
        pipeline: None,
        sources,
        loader,
        rid: 0,
        twin_get: TwinGet::default(),
        restart_source_at: None,
        retry_at: BTreeMap::new(),
        gone_sources: Vec::new(),
        trim_at: None,
        reported_layout: None,
        reported_config: Value::Null,
    };
    module.start_pipeline()?;
    if let Some(addr) = module.opts.metrics {
        let stats = module.stats.clone();
        let bound = crate::metrics::serve(addr, Arc::new(move || stats.prometheus_text()))
            .map_err(|e| ControlError::Other(format!("cannot serve metrics on {addr}: {e}")))?;
        tracing::info!(%bound, "metrics on /metrics");
    }
    let mut next_stats = Instant::now() + module.opts.stats_interval;
    while !stop.load(Ordering::SeqCst) {
        select! {
            recv(events_rx) -> ev => if let Ok(ev) = ev { module.on_event(ev) },
            recv(load_rx) -> done => if let Ok(done) = done { module.on_loaded(done) },
            default(Duration::from_millis(200)) => {},
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + module.opts.stats_interval;
            let stats = module.stats_json();
            module.report_as(ControlKind::Stats, json!({ "stats": stats }));
        }
        module.report_layout();
        module.supervise_sources();
        module.supervise_twin_get();
        if module.trim_at.is_some_and(|t| Instant::now() >= t) {
            module.trim_at = None;
            release_freed_memory();
        }
    }
    tracing::info!("stopping: flushing queued messages");
    if let Some(p) = module.pipeline.take() {
        p.stop();
        p.wait();
    }
    let left = module.session.flush(defaults::FLUSH_TIMEOUT);
    if left > 0 {
        tracing::warn!(
            undelivered = left,
            "EdgeHub unreachable at shutdown; messages not delivered"
        );
    }
    module.session.stop();
    Ok(())
}

fn fetcher(opts: &ModuleOptions, in_use: model_fetch::InUse) -> Fetcher {
    Fetcher::new(
        opts.models_dir.clone(),
        opts.cache_dir.clone(),
        FetchSettings {
            max_bytes: opts.max_model_bytes,
            timeout: opts.fetch_timeout,
            cache_max_bytes: opts.cache_max_bytes,
            in_use: Some(in_use),
            ..FetchSettings::default()
        },
    )
}

/// A model swap frees hundreds of MB in large blocks that glibc keeps in its arenas, so RSS
/// would grow with every swap; hand them back.
pub fn release_freed_memory() {
    crate::memory::release_freed();
}

fn live_settings(c: &DesiredConfig, sources: &BTreeMap<String, SourceSpec>) -> LiveSettings {
    let source = sources
        .get(defaults::DEFAULT_SOURCE)
        .or_else(|| sources.values().next());
    let d = c.detection.clone().unwrap_or_default();
    LiveSettings {
        filter: DetectionFilter {
            min_confidence: d.min_confidence.map(|v| v as f32),
            classes: d.classes.unwrap_or_default(),
        },
        // Each source has its own maxFps (`Pipeline::set_max_fps`).
        max_fps: None,
        source_name: source.map(|s| s.name.clone()).unwrap_or_default(),
        // Module mode sends events unless told otherwise: per-frame messages do not fit a
        // hub's daily quota.
        output_mode: c.output.as_ref().and_then(|o| o.mode).unwrap_or_default(),
        scene: Arc::new(config::scene(c)),
        scenes: scenes::own(c)
            .into_iter()
            .map(|(n, s)| (n, Arc::new(s)))
            .collect(),
    }
}

fn output_name(c: &DesiredConfig) -> String {
    c.output
        .as_ref()
        .and_then(|o| o.name.clone())
        .unwrap_or_else(|| defaults::OUTPUT_NAME.to_string())
}

impl Module {
    fn next_rid(&mut self) -> String {
        self.rid += 1;
        self.rid.to_string()
    }

    fn report(&mut self, mut patch: Value) {
        if let Some(config) = patch.get_mut("config") {
            let echo = config.take();
            *config = report::replacing(&self.reported_config, &echo);
            self.reported_config = echo;
        }
        self.report_as(ControlKind::Reported, patch)
    }

    fn report_as(&mut self, kind: ControlKind, patch: Value) {
        let rid = self.next_rid();
        let sent = serde_json::to_vec(&patch)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                self.session
                    .publish_control(kind, topics::reported_patch(&rid), body)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = sent {
            tracing::error!(error = %e, "reported properties not sent");
        }
    }

    /// `model.layout`: reported once per choice (the tuner settles after each model load).
    fn report_layout(&mut self) {
        let now = self.stats.layout();
        if now.is_some() && now != self.reported_layout {
            self.reported_layout = now.clone();
            self.report(json!({ "model": { "layout": now } }));
        }
    }

    fn stats_json(&self) -> Value {
        let mut v = report::stats(Some(self.stats.snapshot()), &self.session.stats());
        if let Some(s) = v.get_mut("sources").and_then(Value::as_object_mut) {
            for name in &self.gone_sources {
                s.entry(name.clone()).or_insert(Value::Null);
            }
        }
        v
    }

    fn full_report(&mut self) -> Value {
        json!({
            "config": report::config(&self.applied, &self.serving),
            "appliedVersion": self.desired_version,
            "model": report::model(&self.model_status),
            "stats": self.stats_json(),
        })
    }

    fn start_pipeline(&mut self) -> Result<(), ControlError> {
        let inputs: Vec<_> = self
            .sources
            .keys()
            .filter_map(|n| self.source_input(n))
            .collect();
        let sink = edgehub::output_sink(
            self.session.clone(),
            self.identity.clone(),
            self.output.clone(),
        );
        let container = self
            .applied
            .snapshots
            .as_ref()
            .and_then(|s| s.container.clone())
            .unwrap_or_else(|| defaults::SNAPSHOT_CONTAINER.to_string());
        let options = PipelineOptions {
            stats: Some(self.stats.clone()),
            tracker_name: self.opts.tracker.clone(),
            snapshots: self.opts.snapshots.as_ref().map(|root| SnapshotSettings {
                root: root.clone(),
                retention: Default::default(),
                crop: self.opts.snapshot_crop,
                container,
            }),
            ui: self.opts.ui.clone(),
            ..PipelineOptions::default()
        };
        self.retry_at.clear();
        let p = Pipeline::start_sources(
            inputs,
            self.engine.clone(),
            self.settings.clone(),
            Box::new(sink),
            options,
        )?;
        self.pipeline = Some(p);
        Ok(())
    }

    /// One source as the pipeline takes it, with its own maxFps.
    fn source_input(&self, name: &str) -> Option<SourceInput> {
        let spec = self.sources.get(name)?.clone();
        let engine = self.engine.load();
        let mut config = IngestConfig::for_model(spec.clone(), engine.input_spec());
        if self.opts.realtime && !spec.live {
            config.mode = crate::ingest::Mode::Realtime;
        }
        let max_fps = sources::effective(&self.applied)
            .get(name)
            .and_then(|s| s.max_fps)
            .map(|f| f as f32);
        Some(SourceInput {
            name: name.to_string(),
            message_name: Some(spec.name),
            config,
            max_fps,
        })
    }
}
