//! The engine: preprocess -> backend -> decode -> NMS, driven entirely by the model manifest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod backends;
pub mod decoders;
mod detect;
pub mod layout;
pub mod nms;
pub mod pool;
pub mod preprocess;

use crate::model::{Model, ModelError, ModelFormat};
use backends::{Backend, LoadRequest, SharedSlot};
use decoders::{Decoder, Thresholds};
pub use layout::{Layout, LayoutRequest};

pub use decoders::{check_min_confidence, OutOfRange};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The manifest's `[decoder]` table is wrong (found at load time).
    #[error("{manifest}: {message}")]
    DecoderConfig { manifest: PathBuf, message: String },
    /// The manifest's `[backend.<name>]` table is wrong (found at load time).
    #[error("{manifest}: [backend.{backend}]: {message}")]
    BackendConfig {
        manifest: PathBuf,
        backend: String,
        message: String,
    },
    #[error("unknown backend '{backend}'; available: {available}")]
    UnknownBackend { backend: String, available: String },
    #[error("backend '{backend}' unavailable: {reason}")]
    BackendUnavailable { backend: String, reason: String },
    #[error("backend '{backend}' cannot run {format} models; {format} runs on {runs_on}")]
    FormatNotSupported {
        backend: String,
        format: ModelFormat,
        runs_on: String,
    },
    #[error("cannot load model {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },
    #[error(
        "input size mismatch: the graph's input '{input}' has shape {declared} but model.toml feeds {wanted}; fix [input] width/height/layout in model.toml"
    )]
    InputShape {
        input: String,
        declared: String,
        wanted: String,
    },
    #[error("inference failed: {message}")]
    Inference { message: String },
    /// The model's outputs did not decode (found at inference time).
    #[error("decoding failed: {message}")]
    DecodeFailed { message: String },
}

/// How to load a model: which backend and how many intra-op threads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineOptions {
    /// Backend key; `None` picks the first one the manifest lists, else the first compiled-in
    /// backend that runs the model's format.
    pub backend: Option<String>,
    /// Intra-op threads per instance; 0 is `auto` (see [`LayoutRequest`]).
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            backend: None,
            threads: 1,
        }
    }
}

/// Runtime filtering that may change without reloading the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionFilter {
    /// Overrides the manifest's `min_confidence`.
    pub min_confidence: Option<f32>,
    /// Keep only these labels (empty: keep all).
    #[serde(default)]
    pub classes: Vec<String>,
}

/// A box normalized to the original frame: left, top, width, height in 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub l: f32,
    pub t: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    /// From (x1, y1, x2, y2); an inverted box becomes empty, never negative.
    fn from_corners(b: [f32; 4]) -> BBox {
        BBox {
            l: b[0],
            t: b[1],
            w: (b[2] - b[0]).max(0.0),
            h: (b[3] - b[1]).max(0.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    pub class_id: usize,
    pub confidence: f32,
    pub bbox: BBox,
}

/// Time spent in each stage of one inference.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub infer: Duration,
    pub decode: Duration,
}

pub struct Engine {
    model: Model,
    backend_name: String,
    /// One backend per instance; instance `i` serves pool worker `i`.
    backends: Vec<Box<dyn Backend>>,
    /// Shared with a session-less copy (`Engine::unloaded`).
    decoder: std::sync::Arc<dyn Decoder>,
    thresholds: Thresholds,
    layout: Layout,
    /// What the user asked for: `auto` parts let the tuner pick another layout.
    request: LayoutRequest,
    /// Weights the instances share; a relayout of this engine shares them too.
    shared: SharedSlot,
    /// The tuner's progress, shared with every relayout of this model, so a pipeline that
    /// restarts mid-tuning (a short file looping) resumes instead of starting over.
    tuning: SharedSlot,
    /// Sessions alive for this model, counted across its relayouts.
    sessions: std::sync::Arc<layout::Sessions>,
    /// Unique per loaded engine (the tuner tells its own engines apart by it).
    id: u64,
    /// Set once the tuner chose this engine's layout: a restarted source (a file looping,
    /// a camera reconnecting) keeps it instead of tuning again.
    tuned: std::sync::OnceLock<layout::LayoutReport>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model.manifest.name)
            .field("backend", &self.backend_name)
            .finish()
    }
}

impl Engine {
    /// Loads a model folder on a backend. Everything is validated here, so a loaded
    /// engine only fails at inference time on a backend runtime fault.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<Engine, EngineError> {
        let model = Model::load(dir)?;
        Self::from_model(model, opts)
    }

    /// One instance; `opts.threads` 0 picks all cores.
    pub fn from_model(model: Model, opts: &EngineOptions) -> Result<Engine, EngineError> {
        let request = LayoutRequest::from_counts(1, opts.threads);
        Self::from_model_layout(model, opts, request)
    }

    fn build(
        model: Model,
        backend_name: String,
        request: LayoutRequest,
        layout: Layout,
        (shared, tuning, sessions): layout::Kin,
    ) -> Result<Engine, EngineError> {
        let manifest = &model.manifest;
        let (decoder, thresholds) =
            decoders::build(&manifest.decoder, &manifest.input).map_err(|message| {
                EngineError::DecoderConfig {
                    manifest: model.manifest_path(),
                    message,
                }
            })?;
        if let Some(unknown) = manifest
            .backend_options
            .keys()
            .find(|k| !backends::ALL_NAMES.contains(&k.as_str()))
        {
            return Err(EngineError::BackendConfig {
                manifest: model.manifest_path(),
                backend: unknown.clone(),
                message: format!(
                    "no backend is called '{unknown}'; known: {}",
                    backends::ALL_NAMES.join(", ")
                ),
            });
        }
        let load = LoadRequest {
            format: manifest.format,
            path: model.weights_path(),
            manifest: model.manifest_path(),
            input_name: manifest.input.name.clone(),
            input_shape: manifest.input.shape().to_vec(),
            input_dtype: manifest.input.dtype,
            outputs: decoder.outputs(),
            threads: layout.threads,
            instances: layout.instances,
            shared: shared.clone(),
            options: manifest
                .backend_options
                .get(&backend_name)
                .cloned()
                .unwrap_or_default(),
        };
        let started = Instant::now();
        let backends = (0..layout.instances)
            .map(|_| backends::load(&backend_name, &load))
            .collect::<Result<Vec<_>, _>>()?;
        sessions.opened(backends.len());
        tracing::info!(
            model = %manifest.name,
            version = %manifest.version,
            backend = %backend_name,
            instances = layout.instances,
            threads = layout.threads,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Engine {
            model,
            backend_name,
            backends,
            decoder: decoder.into(),
            thresholds,
            layout,
            request,
            shared,
            tuning,
            sessions,
            id: next_id(),
            tuned: std::sync::OnceLock::new(),
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The manifest's confidence threshold (what applies when the user sets none).
    pub fn min_confidence(&self) -> f32 {
        self.thresholds.min_confidence
    }

    pub fn backend_name(&self) -> &str {
        &self.backend_name
    }

    pub fn input_spec(&self) -> &crate::model::InputSpec {
        &self.model.manifest.input
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.sessions.closed(self.backends.len());
    }
}

/// A fresh engine id.
fn next_id() -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The CLI's choice, else the manifest's first, else the first compiled-in backend that
/// runs the model's format.
fn pick_backend(
    opts: &EngineOptions,
    manifest: &crate::model::Manifest,
) -> Result<String, EngineError> {
    if let Some(b) = opts.backend.as_ref().or(manifest.backends.first()) {
        return Ok(b.clone());
    }
    match backends::running(manifest.format).first() {
        Some(b) => Ok(b.to_string()),
        None => Err(EngineError::BackendUnavailable {
            backend: format!("for {}", manifest.format),
            reason: format!(
                "no backend compiled into this binary runs {} models; rebuild with the default features",
                manifest.format
            ),
        }),
    }
}
