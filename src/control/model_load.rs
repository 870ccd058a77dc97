//! Load, warm up and swap models, one load at a time, off the hot path.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::config::ModelConfig;
use super::model_fetch::Fetcher;
use super::report::now_iso;
use crate::engine::{Engine, EngineOptions, LayoutRequest};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelState {
    #[default]
    Loading,
    Ready,
    Failed,
}

/// `reported.model`: what serves, or what is loading, or why the last load failed.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    pub status: ModelState,
    pub name: Option<String>,
    pub version: Option<String>,
    pub backend: Option<String>,
    pub sha256: Option<String>,
    pub loaded_at: Option<String>,
    pub load_ms: Option<u64>,
    pub reason: Option<String>,
}

impl ModelStatus {
    pub fn ready(engine: &Engine, load_ms: u64) -> ModelStatus {
        let m = engine.model();
        ModelStatus {
            status: ModelState::Ready,
            name: Some(m.manifest.name.clone()),
            version: Some(m.manifest.version.clone()),
            backend: Some(engine.backend_name().to_string()),
            sha256: Some(m.sha256.clone()),
            loaded_at: Some(now_iso()),
            load_ms: Some(load_ms),
            reason: None,
        }
    }

    pub fn for_config(status: ModelState, cfg: &ModelConfig, reason: Option<String>) -> Self {
        ModelStatus {
            status,
            name: cfg.name.clone(),
            backend: cfg.backend.clone(),
            sha256: cfg.sha256.clone(),
            reason: reason.map(|r| crate::redact::text(&r)),
            ..Default::default()
        }
    }
}

/// A finished load, good or bad.
pub struct LoadDone {
    pub seq: u64,
    pub config: ModelConfig,
    pub result: Result<(Engine, u64), String>,
}

/// One loader thread: requests queue behind the running load and only the newest queued
/// one runs next, so two loads never race on the cache and a burst of patches costs one load.
pub struct Loader {
    requests: Sender<(u64, ModelConfig)>,
    seq: u64,
}

impl Loader {
    pub fn start(fetcher: Fetcher, done: Sender<LoadDone>) -> std::io::Result<Loader> {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("model-load".into())
            .spawn(move || worker(fetcher, rx, done))?;
        Ok(Loader {
            requests: tx,
            seq: 0,
        })
    }

    /// Asks for a model; any earlier request that has not finished is superseded.
    pub fn request(&mut self, cfg: ModelConfig) {
        self.seq += 1;
        tracing::info!(model = ?cfg.name, uri = ?cfg.uri.as_deref().map(crate::redact::url), backend = ?cfg.backend, "loading model off the hot path");
        let _ = self.requests.send((self.seq, cfg));
    }

    /// Drops interest in whatever is loading (the twin asked for the serving model again).
    pub fn supersede(&mut self) {
        self.seq += 1;
    }

    /// False for a result that a newer request superseded.
    pub fn is_current(&self, done: &LoadDone) -> bool {
        done.seq == self.seq
    }
}

fn worker(fetcher: Fetcher, rx: Receiver<(u64, ModelConfig)>, done: Sender<LoadDone>) {
    while let Ok(mut job) = rx.recv() {
        // Only the newest waiting request is worth loading.
        while let Ok(newer) = rx.try_recv() {
            job = newer;
        }
        let (seq, config) = job;
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            load_model(&fetcher, &config)
        }))
        .unwrap_or_else(|_| Err("model load panicked".into()))
        .map(|e| (e, started.elapsed().as_millis() as u64));
        if done
            .send(LoadDone {
                seq,
                config,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}

pub fn engine_options(m: &ModelConfig) -> EngineOptions {
    EngineOptions {
        backend: m.backend.clone(),
        threads: m.threads.map_or(crate::defaults::THREADS, |t| t as usize),
    }
}

/// Threads and instances as the twin asks; unset is `auto`.
pub fn layout_request(m: &ModelConfig) -> LayoutRequest {
    LayoutRequest {
        instances: m.instances.map(|k| k as usize),
        threads: m.threads.map(|t| t as usize),
    }
}

/// Fetch, verify, load and warm up a model; nothing here touches the serving engine.
pub fn load_model(fetcher: &Fetcher, cfg: &ModelConfig) -> Result<Engine, String> {
    let fetched = fetcher
        .fetch(cfg)
        .map_err(|e| crate::redact::text(&e.to_string()))?;
    let from_archive = fetched.archive_sha256.is_some();
    let model = crate::model::Model::load(&fetched.dir).map_err(|e| e.to_string())?;
    if let (Some(expected), false) = (&cfg.sha256, from_archive) {
        if !expected.eq_ignore_ascii_case(&model.sha256) {
            return Err(format!(
                "sha256 mismatch: twin says {expected}, {} has {}",
                model.weights_path().display(),
                model.sha256
            ));
        }
    }
    let engine = Engine::from_model_layout(model, &engine_options(cfg), layout_request(cfg))
        .map_err(|e| e.to_string())?;
    // A model that cannot infer must fail here, not on the stream.
    engine.warm_up().map_err(|e| e.to_string())?;
    Ok(engine)
}
