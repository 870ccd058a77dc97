//! One copy of a model's weights for all its ONNX Runtime sessions (issue 12 §1 and §4).
//!
//! Every session of an ONNX model owns its initializers: 12 MB for ssdlite-person, once per
//! engine instance and again for each layout the tuner tries. Here the first session of a
//! model is optimized once and saved in ORT format; every session of that model (instances,
//! relayouts) then loads from those bytes with `session.use_ort_model_bytes_for_initializers`,
//! so its initializers point into the one buffer instead of being copied. The prepacked-
//! weights container is shared the same way. Anything failing here falls back to loading
//! the ONNX bytes the plain way, with a warning.

use std::path::Path;
use std::sync::Arc;

use ort::session::builder::{PrepackedWeights, SessionBuilder};
use ort::session::Session;

use super::LoadRequest;
use crate::engine::EngineError;

/// `[backend.ort]` in model.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Options {
    /// One CPU arena for all sessions in the process (default true).
    pub shared_arena: Option<bool>,
    /// One copy of the weights for all sessions of this model (default true).
    pub shared_weights: Option<bool>,
}

/// `off` turns both kinds of sharing off unless model.toml says otherwise (side-by-side runs).
const SHARING_ENV_VAR: &str = "EDGELENS_ORT_SHARING";

impl Options {
    pub(super) fn shared_arena(&self) -> bool {
        self.shared_arena
            .unwrap_or_else(|| env_default(crate::defaults::ORT_SHARED_ARENA))
    }

    pub(super) fn shared_weights(&self) -> bool {
        self.shared_weights
            .unwrap_or_else(|| env_default(crate::defaults::ORT_SHARED_WEIGHTS))
    }
}

fn env_default(default: bool) -> bool {
    match std::env::var(SHARING_ENV_VAR).as_deref() {
        Ok("off") => false,
        Ok("on") => true,
        _ => default,
    }
}

/// What a model's sessions share, kept in the engine's `SharedSlot` (which relayouts of the
/// model inherit).
struct Shared {
    prepacked: PrepackedWeights,
    /// The optimized graph in ORT format: `None` before the first try, `Some(None)` if
    /// making it failed (then it is not tried again for this model).
    optimized: Option<Option<Arc<[u8]>>>,
}

fn slot(req: &LoadRequest) -> std::sync::MutexGuard<'_, Option<Box<dyn std::any::Any + Send>>> {
    req.shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The model's prepacked-weights container, shared by all its instances.
pub(super) fn prepacked(req: &LoadRequest) -> Result<PrepackedWeights, EngineError> {
    let mut slot = slot(req);
    if let Some(s) = slot.as_ref().and_then(|b| b.downcast_ref::<Shared>()) {
        return Ok(s.prepacked.clone());
    }
    // ort panics instead of returning an error when the container cannot be made.
    let w = std::panic::catch_unwind(PrepackedWeights::new).map_err(|_| EngineError::ModelLoad {
        path: req.path.clone(),
        message: "ONNX Runtime could not create a prepacked-weights container".into(),
    })?;
    *slot = Some(Box::new(Shared {
        prepacked: w.clone(),
        optimized: None,
    }));
    Ok(w)
}

/// The model's optimized ORT-format bytes, made by the first call (one extra session
/// creation per model, not per instance). `None`: load the plain way (already warned).
pub(super) fn optimized(
    req: &LoadRequest,
    onnx: &[u8],
    builder: &dyn Fn() -> Result<SessionBuilder, EngineError>,
) -> Option<Arc<[u8]>> {
    // Held while optimizing: a second instance waits for the bytes instead of making its own.
    let mut slot = slot(req);
    let shared = slot.as_mut()?.downcast_mut::<Shared>()?;
    if let Some(done) = &shared.optimized {
        return done.clone();
    }
    let made = save_ort_format(onnx, builder);
    if let Err(e) = &made {
        tracing::warn!(model = %req.path.display(), error = %e, "ONNX Runtime: cannot share weights between sessions; each session loads its own copy (more memory)");
    }
    let made = made.ok();
    shared.optimized = Some(made.clone());
    made
}

/// Optimizes `onnx` in a throwaway session and returns the result in ORT format.
fn save_ort_format(
    onnx: &[u8],
    builder: &dyn Fn() -> Result<SessionBuilder, EngineError>,
) -> Result<Arc<[u8]>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
    let out = dir.path().join("optimized.ort");
    let session = builder()
        .map_err(|e| e.to_string())?
        .with_optimized_model_path(&out)
        .and_then(|b| b.with_config_entry("session.save_model_format", "ORT"))
        .map_err(|e| e.to_string())?
        .commit_from_memory(onnx)
        .map_err(|e| e.to_string())?;
    drop(session);
    read_bounded(&out, onnx.len())
}

/// Reads the saved model; an optimized graph far bigger than its source is refused.
fn read_bounded(path: &Path, source_len: usize) -> Result<Arc<[u8]>, String> {
    let limit = source_len.saturating_mul(4).max(1 << 20) as u64;
    let len = std::fs::metadata(path)
        .map_err(|e| format!("ONNX Runtime wrote no optimized model: {e}"))?
        .len();
    if len > limit {
        return Err(format!(
            "the optimized model is {len} bytes, over 4x its source; not kept"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the optimized model: {e}"))?;
    Ok(bytes.into())
}

/// Commits a session whose initializers point into `bytes` (no copy). The caller must keep
/// `bytes` alive for as long as the session: `OrtBackend` holds both, session first.
pub(super) fn commit_shared(builder: SessionBuilder, bytes: &[u8]) -> Result<Session, String> {
    builder
        .with_config_entry("session.use_ort_model_bytes_directly", "1")
        .and_then(|b| b.with_config_entry("session.use_ort_model_bytes_for_initializers", "1"))
        .map_err(|e| e.to_string())?
        .commit_from_memory(bytes)
        .map_err(|e| e.to_string())
}
