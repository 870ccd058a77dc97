//! ONNX Runtime through `ort`, with the shared library loaded at run time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights, SessionBuilder};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{check_input_shape, parse_options, Backend, InputTensor, LoadRequest, Outputs, Spec};
use crate::engine::EngineError;
use crate::model::ModelFormat;

#[path = "ort_arena.rs"]
mod arena;
#[path = "ort_weights.rs"]
mod ort_weights;

pub(super) const SPEC: Spec = Spec {
    formats: &[ModelFormat::Onnx],
    load,
    prepare_process: None,
};

const LIB_NAME: &str = "libonnxruntime.so";
const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// Where `make deps` puts the library, relative to the project root.
const PROJECT_LOCAL: &str = ".deps/onnxruntime";

struct OrtBackend {
    // `Session::run` takes `&mut self`; inference is serialized per model anyway.
    session: Mutex<Session>,
    /// The optimized model the session's initializers point into (`ort_weights`): declared
    /// after `session`, so it is dropped after it.
    _weights: Option<std::sync::Arc<[u8]>>,
    input_name: String,
    outputs: Vec<String>,
}

/// The candidate library paths, in the order they are tried.
fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(ENV_VAR) {
        out.push(PathBuf::from(p));
        // An explicit choice is final: never fall back behind the user's back.
        return out;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(LIB_NAME));
    }
    out.push(PathBuf::from(PROJECT_LOCAL).join(LIB_NAME));
    out.push(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(PROJECT_LOCAL)
            .join(LIB_NAME),
    );
    out
}

fn environment() -> Result<&'static ort::environment::Environment, EngineError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(init_environment)
        .as_ref()
        .map_err(|reason| EngineError::BackendUnavailable {
            backend: "ort".into(),
            reason: reason.clone(),
        })
}

fn init_environment() -> Result<ort::environment::Environment, String> {
    let candidates = library_candidates();
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "ONNX Runtime library not found (looked in: {}); run `make deps` or set {ENV_VAR} to the path of {LIB_NAME}",
            looked.join(", ")
        ));
    };
    tracing::debug!(path = %path.display(), "loading ONNX Runtime");
    // ort panics on some load failures instead of returning an error.
    let loaded =
        std::panic::catch_unwind(|| ort::init_from(path).map(|b| b.with_name("edgelens").build()));
    match loaded {
        Ok(Ok(Ok(env))) => Ok(env),
        Ok(Ok(Err(e))) => Err(format!("ONNX Runtime at {} failed to start: {e}", path.display())),
        Ok(Err(e)) => Err(format!(
            "cannot load ONNX Runtime from {}: {e}; it must be version >= 1.31 (run `make deps` or fix {ENV_VAR})",
            path.display()
        )),
        Err(_) => Err(format!(
            "cannot load ONNX Runtime from {} (dlopen failed); run `make deps` or fix {ENV_VAR}",
            path.display()
        )),
    }
}

fn load(req: &LoadRequest) -> Result<Box<dyn Backend>, EngineError> {
    let env = environment()?;
    let bytes = std::fs::read(&req.path).map_err(|e| EngineError::ModelLoad {
        path: req.path.clone(),
        message: e.to_string(),
    })?;
    let model_err = |e: String| EngineError::ModelLoad {
        path: req.path.clone(),
        message: e,
    };
    let options: ort_weights::Options = parse_options("ort", req)?;
    let packed = ort_weights::prepacked(req)?;
    let builder = || configure(env, req, &options, &packed).map_err(|e| model_err(e.to_string()));
    let shared = options
        .shared_weights()
        .then(|| ort_weights::optimized(req, &bytes, &builder))
        .flatten();
    let (session, weights) = match shared {
        Some(w) => match ort_weights::commit_shared(builder()?, &w) {
            Ok(s) => (s, Some(w)),
            Err(e) => {
                tracing::warn!(error = %e, "ONNX Runtime: the shared-weights session failed; loading this one with its own copy");
                (commit_onnx(builder()?, &bytes, &model_err)?, None)
            }
        },
        None => (commit_onnx(builder()?, &bytes, &model_err)?, None),
    };

    let input = match &req.input_name {
        Some(name) => session
            .inputs()
            .iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| {
                model_err(format!(
                    "the graph has no input named '{name}' (it has: {})",
                    session
                        .inputs()
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => session
            .inputs()
            .first()
            .ok_or_else(|| model_err("the graph has no inputs".into()))?,
    };
    let input_name = input.name().to_string();
    if let ValueType::Tensor { shape, ty, .. } = input.dtype() {
        let declared: Vec<Option<usize>> = shape
            .iter()
            .map(|d| usize::try_from(*d).ok().filter(|d| *d > 0))
            .collect();
        check_input_shape(&declared, &req.input_shape, &input_name)?;
        let expected = match req.input_dtype {
            crate::model::DType::F32 => TensorElementType::Float32,
            crate::model::DType::U8 => TensorElementType::Uint8,
        };
        if ty != &expected {
            return Err(model_err(format!(
                "input '{input_name}' is {ty:?} but model.toml says dtype {:?}",
                req.input_dtype
            )));
        }
    }
    for name in &req.outputs {
        if !session.outputs().iter().any(|o| o.name() == name) {
            return Err(model_err(format!(
                "the graph has no output named '{name}' (it has: {}); fix the decoder's tensor names in model.toml",
                session.outputs().iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    drop(bytes);
    // Parsing and graph optimization freed several times the model's size; return it now,
    // not at the next swap (docs/memory.md).
    crate::memory::release_freed();
    Ok(Box::new(OrtBackend {
        session: Mutex::new(session),
        _weights: weights,
        input_name,
        outputs: req.outputs.clone(),
    }))
}

/// A session builder with edgelens's settings for `req`.
fn configure(
    env: &'static ort::environment::Environment,
    req: &LoadRequest,
    options: &ort_weights::Options,
    prepacked: &PrepackedWeights,
) -> Result<SessionBuilder, ort::Error> {
    let mut builder = Session::builder(env)?;
    // Shared arena registered (or it failed and was warned about): sessions opt in.
    if options.shared_arena() && arena::shared(env).is_ok() {
        builder = builder.with_env_allocators().map_err(ort::Error::<()>::from)?;
    }
    Ok(builder
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(req.threads.max(1))?
        .with_inter_threads(1)?
        // The arena stays on (off, every run mallocs and frees MBs: more RSS and sys time);
        // the memory pattern goes: it reserves a second, planned block beside the arena.
        .with_memory_pattern(crate::defaults::ORT_MEMORY_PATTERN)?
        // Several instances share the cores: threads that spin while idle steal them.
        .with_intra_op_spinning(req.instances <= 1)?
        .with_prepacked_weights(prepacked)?)
}

/// A session with its own copy of the weights, from the ONNX bytes.
fn commit_onnx(
    mut builder: SessionBuilder,
    onnx: &[u8],
    model_err: &dyn Fn(String) -> EngineError,
) -> Result<Session, EngineError> {
    builder.commit_from_memory(onnx).map_err(|e| {
        model_err(format!(
            "{e} (the file is not a valid ONNX model: truncated or corrupt?)"
        ))
    })
}

impl Backend for OrtBackend {
    fn run(&self, input: &InputTensor) -> Result<Outputs, EngineError> {
        let infer = |e: ort::Error| EngineError::Inference {
            message: e.to_string(),
        };
        let value = match input {
            InputTensor::F32(a) => ort::session::SessionInputValue::from(
                TensorRef::from_array_view(a.view()).map_err(infer)?,
            ),
            InputTensor::U8(a) => ort::session::SessionInputValue::from(
                TensorRef::from_array_view(a.view()).map_err(infer)?,
            ),
        };
        let mut session = self.session.lock().map_err(|_| EngineError::Inference {
            message: "ONNX Runtime session poisoned by an earlier panic".into(),
        })?;
        let results = session
            .run(vec![(
                std::borrow::Cow::from(self.input_name.as_str()),
                value,
            )])
            .map_err(infer)?;
        let mut out = Outputs::default();
        for name in &self.outputs {
            let v = results.get(name).ok_or_else(|| EngineError::Inference {
                message: format!("output '{name}' missing from the result"),
            })?;
            out.0.insert(name.clone(), to_f32(v).map_err(infer)?);
        }
        Ok(out)
    }
}

fn to_f32(v: &ort::value::DynValue) -> Result<ndarray::ArrayD<f32>, ort::Error> {
    match v.dtype().tensor_type() {
        Some(TensorElementType::Float32) => Ok(v.try_extract_array::<f32>()?.to_owned()),
        Some(TensorElementType::Int64) => Ok(v.try_extract_array::<i64>()?.mapv(|x| x as f32)),
        Some(TensorElementType::Int32) => Ok(v.try_extract_array::<i32>()?.mapv(|x| x as f32)),
        Some(TensorElementType::Uint8) => Ok(v.try_extract_array::<u8>()?.mapv(f32::from)),
        Some(TensorElementType::Float64) => Ok(v.try_extract_array::<f64>()?.mapv(|x| x as f32)),
        _ => Ok(v.try_extract_array::<f32>()?.to_owned()),
    }
}
