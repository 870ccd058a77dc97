//! One copy of a model's weights for all its ONNX Runtime sessions (issue 12 §1 and §4).
//!
//! Every session of an ONNX model owns its initializers: 12 MB for ssdlite-person, once per
//! engine instance and again for each layout the tuner tries. Here the first session of a
//! model is optimized once and saved in ORT format; every session of that model (instances,
//! relayouts) then loads from those bytes with `session.use_ort_model_bytes_for_initializers`,
//! so its initializers point into the one buffer instead of being copied. The prepacked-
//! weights container is shared the same way. Anything failing here falls back to loading
//! the ONNX bytes the plain way, with a warning.
//!
//! Opt-in (`defaults::ORT_SHARED_WEIGHTS`): inference on weights read in place from the
//! ORT-format buffer measured 5-10% slower (the same graph with copied initializers was not),
//! most likely because flatbuffers keep tensor data only 4-byte aligned (docs/memory.md).

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
    /// One CPU arena for all sessions in the process (default false).
    pub shared_arena: Option<bool>,
    /// One copy of the weights for all sessions of this model (default false).
    pub shared_weights: Option<bool>,
}

/// For side-by-side runs, unless model.toml says otherwise: `off` (neither kind of sharing),
/// `arena` or `weights` (only that one), `on` (both).
const SHARING_ENV_VAR: &str = "EDGELENS_ORT_SHARING";

impl Options {
    pub(super) fn shared_arena(&self) -> bool {
        self.shared_arena
            .unwrap_or_else(|| env_default("arena", crate::defaults::ORT_SHARED_ARENA))
    }

    pub(super) fn shared_weights(&self) -> bool {
        self.shared_weights
            .unwrap_or_else(|| env_default("weights", crate::defaults::ORT_SHARED_WEIGHTS))
    }
}

fn env_default(kind: &str, default: bool) -> bool {
    sharing_from(std::env::var(SHARING_ENV_VAR).ok().as_deref(), kind, default)
}

/// `kind` ("arena" or "weights") on or off, given the switch's value.
fn sharing_from(value: Option<&str>, kind: &str, default: bool) -> bool {
    match value {
        Some("off") => false,
        Some("on") => true,
        Some(only) if only == "arena" || only == "weights" => only == kind,
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
        .map_err(|e| e.to_string())?
        .with_config_entry("session.save_model_format", "ORT")
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
        .map_err(|e| e.to_string())?
        .with_config_entry("session.use_ort_model_bytes_for_initializers", "1")
        .map_err(|e| e.to_string())?
        .commit_from_memory(bytes)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{load, InputTensor, LoadRequest};
    use super::*;
    use crate::engine::backends::SharedSlot;
    use crate::model::{DType, ModelFormat};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// ssdlite-person as the engine would ask for it, with sharing set by `options`.
    fn request(shared: &SharedSlot, options: &str) -> LoadRequest {
        let dir = root().join("models/ssdlite-person");
        LoadRequest {
            format: ModelFormat::Onnx,
            path: dir.join("ssdlite-person.onnx"),
            manifest: dir.join("model.toml"),
            input_name: Some("Preprocessor/sub:0".into()),
            input_shape: vec![1, 300, 300, 3],
            input_dtype: DType::F32,
            outputs: vec!["Squeeze:0".into(), "concat_1:0".into()],
            threads: 1,
            instances: 2,
            shared: shared.clone(),
            options: options.parse().expect("options"),
        }
    }

    /// A real test image, stretched to 300x300 and scaled to [-1, 1] as model.toml says.
    fn astronaut() -> InputTensor {
        let img = image::open(root().join("tests/data/astronaut.png"))
            .expect("test image")
            .to_rgb8();
        let img = image::imageops::resize(&img, 300, 300, image::imageops::FilterType::Triangle);
        let data: Vec<f32> = img.as_raw().iter().map(|v| (*v as f32 - 127.5) / 127.5).collect();
        InputTensor::F32(ndarray::ArrayD::from_shape_vec(vec![1, 300, 300, 3], data).expect("shape"))
    }

    fn optimized_in(shared: &SharedSlot) -> Option<Option<usize>> {
        let slot = shared.lock().expect("slot");
        let s = slot.as_ref()?.downcast_ref::<Shared>()?;
        s.optimized.as_ref().map(|o| o.as_ref().map(|b| b.len()))
    }

    #[test]
    fn instances_sharing_weights_and_arena_give_the_outputs_of_a_plain_session() {
        let input = astronaut();
        let plain = load(&request(
            &SharedSlot::default(),
            "shared_arena = false\nshared_weights = false",
        ))
        .expect("plain session");
        let want = plain.run(&input).expect("plain run").0;

        let shared = SharedSlot::default();
        let sharing = "shared_arena = true\nshared_weights = true";
        let a = load(&request(&shared, sharing)).expect("first instance");
        let b = load(&request(&shared, sharing)).expect("second instance");
        // The sharing path was taken: the slot holds the optimized model, made once.
        assert!(matches!(optimized_in(&shared), Some(Some(n)) if n > 1 << 20));
        for (name, backend) in [("first", &a), ("second", &b)] {
            let got = backend.run(&input).expect("shared run").0;
            assert_eq!(got.keys().collect::<std::collections::BTreeSet<_>>(), want.keys().collect());
            for (k, v) in &want {
                assert_eq!(got[k].shape(), v.shape(), "{name} instance, {k}");
                assert!(
                    got[k].iter().zip(v.iter()).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{name} instance, {k}: outputs differ from the plain session"
                );
            }
        }
    }

    #[test]
    fn weights_that_cannot_be_optimized_fall_back_to_a_copy_per_session() {
        let shared = SharedSlot::default();
        let req = request(&shared, "shared_weights = true");
        prepacked(&req).expect("container");
        let onnx = std::fs::read(&req.path).expect("model");
        let failing = || -> Result<SessionBuilder, EngineError> {
            Err(EngineError::Inference {
                message: "no builder".into(),
            })
        };
        assert!(optimized(&req, &onnx, &failing).is_none());
        // Failed once, not tried again for this model (each load would pay for it).
        assert_eq!(optimized_in(&shared), Some(None));
        let backend = load(&req).expect("loads with its own copy");
        let out = backend.run(&astronaut()).expect("runs");
        assert_eq!(out.0["concat_1:0"].shape(), &[1, 1917, 2]);
    }

    #[test]
    fn an_optimized_model_far_bigger_than_its_source_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("big.ort");
        std::fs::write(&path, vec![0u8; 5 << 20]).expect("write");
        let e = read_bounded(&path, 1 << 20).expect_err("5 MB from a 1 MB source");
        assert!(e.contains("over 4x"), "{e}");
        assert_eq!(read_bounded(&path, 2 << 20).expect("within 4x").len(), 5 << 20);
    }

    #[test]
    fn the_sharing_switch_reads_off_on_and_one_kind() {
        assert!(!sharing_from(Some("off"), "arena", true));
        assert!(sharing_from(Some("on"), "weights", false));
        assert!(sharing_from(Some("arena"), "arena", false));
        assert!(!sharing_from(Some("arena"), "weights", true));
        assert!(sharing_from(None, "weights", true));
        assert!(!sharing_from(Some("bogus"), "weights", false));
    }
}
