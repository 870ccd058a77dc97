//! The control plane: the module twin carries the whole runtime config. Desired
//! patches are validated as a whole, applied live (model swaps load off the hot
//! path), and every outcome is written to reported properties. Direct methods
//! `getStats` and `snapshot` read the running pipeline.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{select, Sender};
use serde::Serialize;
use serde_json::{json, Value};

pub mod config;
pub mod model_fetch;

use crate::edgehub::{self, topic_param, EdgeHubSink, ModuleIdentity};
use crate::engine::{preprocess, DetectionFilter, Engine, EngineOptions};
use crate::ingest::{self, IngestConfig, SourceSpec};
use crate::pipeline::{LiveSettings, Pipeline, PipelineOptions};
use crate::publish::mqtt::{Session, SessionEvent};
use config::{DesiredConfig, ModelConfig};
use model_fetch::Fetcher;

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
    /// The config before the twin says anything (from the command line).
    pub initial: DesiredConfig,
    pub models_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub max_model_bytes: u64,
    pub queue_capacity: usize,
    pub stats_interval: Duration,
    pub presets_dir: Option<PathBuf>,
    pub metrics: Option<std::net::SocketAddr>,
    /// Pace file sources at their frame rate, like a camera.
    pub realtime: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelStatus {
    status: &'static str,
    name: Option<String>,
    version: Option<String>,
    backend: Option<String>,
    sha256: Option<String>,
    loaded_at: Option<String>,
    load_ms: Option<u64>,
    reason: Option<String>,
}

struct LoadDone {
    seq: u64,
    config: ModelConfig,
    result: Result<(Engine, u64), String>,
}

struct Module {
    identity: Arc<ModuleIdentity>,
    session: Session,
    opts: ModuleOptions,
    engine: Arc<ArcSwap<Engine>>,
    settings: Arc<ArcSwap<LiveSettings>>,
    output: Arc<ArcSwap<String>>,
    pipeline: Option<Pipeline>,
    source: SourceSpec,
    applied: DesiredConfig,
    desired_doc: Value,
    desired_version: Option<i64>,
    model_status: ModelStatus,
    load_seq: u64,
    load_tx: Sender<LoadDone>,
    rid: u64,
    pending_get: HashSet<String>,
    restart_source_at: Option<Instant>,
}

fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Runs the module until `stop` is set (SIGTERM).
pub fn run_module(opts: ModuleOptions, stop: Arc<AtomicBool>) -> Result<(), ControlError> {
    let identity = Arc::new(ModuleIdentity::from_env()?);
    tracing::info!(device = %identity.device, module = %identity.module, gateway = %identity.gateway, port = identity.port, "module mode");
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let session = edgehub::connect(&identity, opts.queue_capacity, events_tx)?;

    // Start serving the command-line config at once; the twin may change it when it arrives.
    let model_cfg = opts.initial.model.clone().unwrap_or_default();
    let fetcher = fetcher(&opts);
    let dir = fetcher
        .fetch(&model_cfg)
        .map_err(|e| ControlError::Other(e.to_string()))?
        .dir;
    let started = Instant::now();
    let engine = Engine::load(&dir, &engine_options(&model_cfg))?;
    let source = resolve_source(&opts.initial, opts.presets_dir.as_deref())?;
    let (load_tx, load_rx) = crossbeam_channel::unbounded();
    let mut module = Module {
        model_status: ready_status(&engine, started.elapsed().as_millis() as u64),
        engine: Arc::new(ArcSwap::from_pointee(engine)),
        settings: Arc::new(ArcSwap::from_pointee(live_settings(&opts.initial, &source))),
        output: Arc::new(ArcSwap::from_pointee(output_name(&opts.initial))),
        identity,
        session,
        applied: opts.initial.clone(),
        desired_doc: json!({}),
        desired_version: None,
        opts,
        pipeline: None,
        source,
        load_seq: 0,
        load_tx,
        rid: 0,
        pending_get: HashSet::new(),
        restart_source_at: None,
    };
    module.start_pipeline()?;
    if let Some(addr) = module.opts.metrics {
        let stats = module.pipeline.as_ref().map(|p| p.stats.clone());
        if let Some(stats) = stats {
            let bound = crate::metrics::serve(addr, Arc::new(move || stats.prometheus_text()))
                .map_err(|e| ControlError::Other(format!("cannot serve metrics on {addr}: {e}")))?;
            tracing::info!(%bound, "metrics on /metrics");
        }
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
            module.report(json!({ "stats": stats }));
        }
        module.supervise_source();
    }
    tracing::info!("stopping: flushing queued messages");
    if let Some(p) = module.pipeline.take() {
        p.stop();
        p.wait();
    }
    let left = module.session.flush(Duration::from_secs(3));
    if left > 0 {
        tracing::warn!(
            undelivered = left,
            "EdgeHub unreachable at shutdown; messages not delivered"
        );
    }
    module.session.stop();
    Ok(())
}

fn fetcher(opts: &ModuleOptions) -> Fetcher {
    Fetcher {
        models_dir: opts.models_dir.clone(),
        cache_dir: opts.cache_dir.clone(),
        settings: model_fetch::FetchSettings {
            max_bytes: opts.max_model_bytes,
            ..Default::default()
        },
    }
}

fn engine_options(m: &ModelConfig) -> EngineOptions {
    EngineOptions {
        backend: m.backend.clone(),
        threads: m.threads.unwrap_or(1) as usize,
    }
}

fn ready_status(engine: &Engine, load_ms: u64) -> ModelStatus {
    let m = engine.model();
    ModelStatus {
        status: "ready",
        name: Some(m.manifest.name.clone()),
        version: Some(m.manifest.version.clone()),
        backend: Some(engine.backend_name().to_string()),
        sha256: Some(m.sha256.clone()),
        loaded_at: Some(now_iso()),
        load_ms: Some(load_ms),
        reason: None,
    }
}

fn resolve_source(
    c: &DesiredConfig,
    presets: Option<&std::path::Path>,
) -> Result<SourceSpec, ingest::IngestError> {
    let s = c.source.clone().unwrap_or_default();
    let uri = s.uri.unwrap_or_else(|| "samples/vtest.mp4".to_string());
    ingest::resolve(&uri, &s.params.unwrap_or_default(), presets)
}

fn live_settings(c: &DesiredConfig, source: &SourceSpec) -> LiveSettings {
    let d = c.detection.clone().unwrap_or_default();
    LiveSettings {
        filter: DetectionFilter {
            min_confidence: d.min_confidence.map(|v| v as f32),
            classes: d.classes.unwrap_or_default(),
        },
        max_fps: c.source.as_ref().and_then(|s| s.max_fps).map(|f| f as f32),
        source_name: source.name.clone(),
    }
}

fn output_name(c: &DesiredConfig) -> String {
    c.output
        .as_ref()
        .and_then(|o| o.name.clone())
        .unwrap_or_else(|| "detections".to_string())
}

/// Desired config with the command-line defaults filled in where the twin says nothing.
fn with_defaults(mut c: DesiredConfig, defaults: &DesiredConfig) -> DesiredConfig {
    if c.model.is_none() {
        c.model = defaults.model.clone();
    }
    if c.source.is_none() {
        c.source = defaults.source.clone();
    }
    c
}

impl Module {
    fn next_rid(&mut self) -> String {
        self.rid += 1;
        self.rid.to_string()
    }

    fn report(&mut self, patch: Value) {
        let rid = self.next_rid();
        match serde_json::to_vec(&patch) {
            Ok(body) => self.session.publish_control(
                format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
                body,
            ),
            Err(e) => tracing::error!(error = %e, "cannot serialize reported properties"),
        }
    }

    fn stats_json(&self) -> Value {
        let mut v = match &self.pipeline {
            Some(p) => serde_json::to_value(p.stats.snapshot()).unwrap_or(Value::Null),
            None => json!({}),
        };
        let out = self.session.stats();
        if let Some(o) = v.as_object_mut() {
            o.insert("outboxQueued".into(), json!(out.queued));
            o.insert("outboxDropped".into(), json!(out.dropped));
            o.insert("published".into(), json!(out.published));
            o.insert("connects".into(), json!(self.session.connects()));
        }
        v
    }

    fn full_report(&mut self) -> Value {
        json!({
            "config": serde_json::to_value(&self.applied).unwrap_or(Value::Null),
            "appliedVersion": self.desired_version,
            "model": serde_json::to_value(&self.model_status).unwrap_or(Value::Null),
            "stats": self.stats_json(),
        })
    }

    fn start_pipeline(&mut self) -> Result<(), ControlError> {
        let engine = self.engine.load();
        let mut config = IngestConfig::for_model(self.source.clone(), engine.input_spec());
        if self.opts.realtime && !self.source.live {
            config.mode = crate::ingest::Mode::Realtime;
        }
        let sink = EdgeHubSink {
            session: self.session.clone(),
            identity: self.identity.clone(),
            output: self.output.clone(),
        };
        let p = Pipeline::start(
            config,
            self.engine.clone(),
            self.settings.clone(),
            Box::new(sink),
            PipelineOptions::default(),
        )?;
        self.pipeline = Some(p);
        Ok(())
    }

    /// Files loop in module mode (a module has nothing else to do); failures retry.
    fn supervise_source(&mut self) {
        if let Some(at) = self.restart_source_at {
            if Instant::now() >= at {
                self.restart_source_at = None;
                if let Err(e) = self.start_pipeline() {
                    tracing::error!(error = %e, "cannot restart the source");
                    self.restart_source_at = Some(Instant::now() + Duration::from_secs(5));
                }
            }
            return;
        }
        if self.pipeline.as_ref().is_some_and(|p| p.is_finished()) {
            if let Some(p) = self.pipeline.take() {
                let report = p.wait();
                let delay = match report.ingest {
                    Ok(()) => Duration::ZERO,
                    Err(e) => {
                        tracing::error!(error = %e, "source failed; retrying in 5 s");
                        Duration::from_secs(5)
                    }
                };
                self.restart_source_at = Some(Instant::now() + delay);
            }
        }
    }

    fn on_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Connected => {
                // Patches may have been missed while offline: always read the whole twin.
                let rid = self.next_rid();
                self.pending_get.insert(rid.clone());
                self.session
                    .publish_control(format!("$iothub/twin/GET/?$rid={rid}"), Vec::new());
            }
            SessionEvent::Disconnected(reason) => {
                tracing::debug!(%reason, "EdgeHub disconnected");
            }
            SessionEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if let Some(rest) = topic.strip_prefix("$iothub/twin/res/") {
            let status = rest.split('/').next().unwrap_or_default();
            let rid = topic_param(topic, "$rid").unwrap_or_default().to_string();
            if self.pending_get.remove(&rid) {
                if status != "200" {
                    tracing::warn!(status, "twin GET failed");
                    return;
                }
                match serde_json::from_slice::<Value>(payload) {
                    Ok(twin) => {
                        let desired = twin.get("desired").cloned().unwrap_or_else(|| json!({}));
                        let version = desired.get("$version").and_then(Value::as_i64);
                        if version.is_some() && version == self.desired_version {
                            tracing::info!(?version, "twin unchanged since last applied");
                            let r = self.full_report();
                            self.report(r);
                        } else {
                            self.apply_document(desired, version, "twin");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "twin GET returned invalid JSON"),
                }
            } else if !status.starts_with('2') {
                tracing::warn!(
                    status,
                    rid,
                    "reported properties update rejected by EdgeHub"
                );
            }
        } else if topic.starts_with("$iothub/twin/PATCH/properties/desired/") {
            let version = topic_param(topic, "$version").and_then(|v| v.parse().ok());
            match serde_json::from_slice::<Value>(payload) {
                Ok(patch) if patch.is_object() => {
                    let mut candidate = self.desired_doc.clone();
                    config::merge(&mut candidate, &patch);
                    self.apply_document(candidate, version, "patch");
                }
                _ => {
                    let reason = "desired patch is not a JSON object".to_string();
                    tracing::warn!(?version, %reason, "desired patch rejected");
                    self.report(json!({"lastDesired": {"version": version, "status": "rejected", "reason": reason, "at": now_iso()}}));
                }
            }
        } else if let Some(rest) = topic.strip_prefix("$iothub/methods/POST/") {
            let name = rest.split('/').next().unwrap_or_default().to_string();
            let rid = topic_param(topic, "$rid").unwrap_or_default().to_string();
            let (status, body) = self.on_method(&name, payload);
            self.session.publish_control(
                format!("$iothub/methods/res/{status}/?$rid={rid}"),
                serde_json::to_vec(&body).unwrap_or_default(),
            );
        } else {
            tracing::debug!(topic, "message on an input ignored");
        }
    }

    fn on_method(&mut self, name: &str, _payload: &[u8]) -> (u16, Value) {
        match name {
            "getStats" => (200, self.stats_json()),
            "snapshot" => {
                let latest = self
                    .pipeline
                    .as_ref()
                    .and_then(|p| p.latest.lock().ok().and_then(|l| l.clone()));
                match latest {
                    Some(m) => (200, serde_json::to_value(m).unwrap_or(Value::Null)),
                    None => (404, json!({"message": "no frame inferred yet"})),
                }
            }
            other => (
                404,
                json!({"message": format!("unknown method '{other}'; available: getStats, snapshot")}),
            ),
        }
    }

    /// Validates the whole candidate desired document, then applies what changed.
    fn apply_document(&mut self, doc: Value, version: Option<i64>, origin: &str) {
        let parsed = config::parse(&doc).and_then(|c| {
            let c = with_defaults(c, &self.opts.initial);
            // A source that cannot resolve is a validation failure, not a runtime one.
            let source = resolve_source(&c, self.opts.presets_dir.as_deref())
                .map_err(|e| vec![e.to_string()])?;
            Ok((c, source))
        });
        let (cfg, source) = match parsed {
            Ok(x) => x,
            Err(errors) => {
                let reason = errors.join("; ");
                tracing::warn!(?version, %reason, origin, "desired properties rejected; running config unchanged");
                self.report(json!({"lastDesired": {"version": version, "status": "rejected", "reason": reason, "at": now_iso()}}));
                return;
            }
        };
        self.desired_doc = doc;
        self.desired_version = version;
        let old = std::mem::replace(&mut self.applied, cfg.clone());
        // Settings that only need a swap.
        self.settings.store(Arc::new(live_settings(&cfg, &source)));
        self.output.store(Arc::new(output_name(&cfg)));
        if source != self.source {
            tracing::info!(from = %self.source.name, to = %source.name, "switching source");
            self.source = source;
            if let Some(p) = self.pipeline.take() {
                p.stop();
                p.wait();
            }
            self.restart_source_at = None;
            if let Err(e) = self.start_pipeline() {
                tracing::error!(error = %e, "cannot start the new source; retrying");
                self.restart_source_at = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        let wanted = cfg.model.clone().unwrap_or_default();
        if old.model.clone().unwrap_or_default() != wanted || self.model_status.status == "failed" {
            // Keep reporting the model that serves until the new one is ready.
            self.applied.model = old.model;
            self.start_load(wanted);
        }
        tracing::info!(?version, origin, "desired properties applied");
        let mut r = self.full_report();
        if let Some(o) = r.as_object_mut() {
            o.insert(
                "lastDesired".into(),
                json!({"version": version, "status": "applied", "reason": Value::Null, "at": now_iso()}),
            );
        }
        self.report(r);
    }

    fn start_load(&mut self, cfg: ModelConfig) {
        self.load_seq += 1;
        let seq = self.load_seq;
        self.model_status = ModelStatus {
            status: "loading",
            name: cfg.name.clone(),
            backend: cfg.backend.clone(),
            sha256: cfg.sha256.clone(),
            ..Default::default()
        };
        tracing::info!(model = ?cfg.name, uri = ?cfg.uri.as_deref().map(|u| u.split('?').next().unwrap_or(u)), backend = ?cfg.backend, "loading model off the hot path");
        let fetcher = fetcher(&self.opts);
        let tx = self.load_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("model-load".into())
            .spawn(move || {
                let started = Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    load_model(&fetcher, &cfg)
                }))
                .unwrap_or_else(|_| Err("model load panicked".into()))
                .map(|e| (e, started.elapsed().as_millis() as u64));
                let _ = tx.send(LoadDone {
                    seq,
                    config: cfg,
                    result,
                });
            });
        if let Err(e) = spawned {
            self.model_status.status = "failed";
            self.model_status.reason = Some(format!("cannot start the loader: {e}"));
        }
    }

    fn on_loaded(&mut self, done: LoadDone) {
        if done.seq != self.load_seq {
            return; // a newer request superseded this one
        }
        match done.result {
            Ok((engine, load_ms)) => {
                self.model_status = ready_status(&engine, load_ms);
                tracing::info!(model = %engine.model().manifest.name, backend = engine.backend_name(), load_ms, "model swapped in");
                // The swap: the inference thread picks it up at its next frame.
                self.engine.store(Arc::new(engine));
                self.applied.model = Some(done.config);
            }
            Err(reason) => {
                tracing::warn!(%reason, "model load failed; the previous model keeps serving");
                self.model_status = ModelStatus {
                    status: "failed",
                    name: done.config.name.clone(),
                    backend: done.config.backend.clone(),
                    sha256: done.config.sha256.clone(),
                    reason: Some(reason),
                    ..Default::default()
                };
            }
        }
        let r = json!({
            "config": serde_json::to_value(&self.applied).unwrap_or(Value::Null),
            "model": serde_json::to_value(&self.model_status).unwrap_or(Value::Null),
        });
        self.report(r);
    }
}

/// Fetch, verify, load and warm up a model; nothing here touches the serving engine.
fn load_model(fetcher: &Fetcher, cfg: &ModelConfig) -> Result<Engine, String> {
    let fetched = fetcher.fetch(cfg).map_err(|e| e.to_string())?;
    let (dir, from_archive) = (fetched.dir, fetched.archive_sha256.is_some());
    let model = crate::model::Model::load(&dir).map_err(|e| e.to_string())?;
    if let (Some(expected), false) = (&cfg.sha256, from_archive) {
        if !expected.eq_ignore_ascii_case(&model.sha256) {
            return Err(format!(
                "sha256 mismatch: twin says {expected}, {} has {}",
                model.weights_path().display(),
                model.sha256
            ));
        }
    }
    let engine = Engine::from_model(model, &engine_options(cfg)).map_err(|e| e.to_string())?;
    // One warm-up run: a model that cannot infer must fail here, not on the stream.
    engine
        .infer_only(&preprocess::zero_tensor(engine.input_spec()))
        .map_err(|e| e.to_string())?;
    Ok(engine)
}

/// Builds the initial config from command-line style values.
pub fn initial_config(
    model_dir: &std::path::Path,
    backend: Option<String>,
    threads: usize,
    source: &str,
    params: BTreeMap<String, String>,
) -> (DesiredConfig, PathBuf) {
    let name = model_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "ssdlite-person".into());
    let models_dir = model_dir
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("models"));
    (
        DesiredConfig {
            model: Some(ModelConfig {
                name: Some(name),
                uri: None,
                sha256: None,
                backend,
                threads: Some(threads as u32),
            }),
            source: Some(config::SourceConfig {
                uri: Some(source.to_string()),
                params: if params.is_empty() {
                    None
                } else {
                    Some(params)
                },
                max_fps: None,
            }),
            detection: None,
            output: None,
        },
        models_dir,
    )
}
