//! TensorFlow through its C API, linked at run time: SavedModel folders and frozen GraphDefs.

use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use ndarray::{ArrayD, IxDyn};
use tensorflow::{
    DataType, Graph, ImportGraphDefOptions, Operation, OutputName, SavedModelBundle, Session,
    SessionOptions, SessionRunArgs, Tensor,
};

use super::{check_input_shape, parse_options, Backend, InputTensor, LoadRequest, Outputs, Spec};
use crate::engine::EngineError;
use crate::model::ModelFormat;

pub(super) const SPEC: Spec = Spec {
    formats: &[ModelFormat::TfFrozen, ModelFormat::TfSavedModel],
    load,
    prepare_process: Some(prepare_process),
};

const NAME: &str = "tensorflow";
/// Where `make deps` puts `libtensorflow.so`, relative to the project root.
const PROJECT_LOCAL: &str = ".deps/tensorflow";
const DEFAULT_SIGNATURE: &str = "serving_default";

/// `[backend.tensorflow]` in model.toml.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// SavedModel signature to run; `serving_default` when absent.
    signature: Option<String>,
}

struct Endpoint {
    op: Operation,
    index: i32,
    dtype: DataType,
}

struct TfBackend {
    // TF sessions are thread-safe, but the crate's wrapper types are not Sync.
    inner: Mutex<TfSession>,
}

struct TfSession {
    session: Session,
    input: Endpoint,
    outputs: Vec<(String, Endpoint)>,
    _graph: Graph,
}

/// Environment the TF library reads: set from `main` before any thread exists, never from
/// the model-load thread. The crate's library finder only reads `TENSORFLOW_DIR`, and TF's C++
/// logging reads `TF_CPP_MIN_LOG_LEVEL` once (no C API sets either), so the environment is the
/// only way in.
fn prepare_process() {
    // TF's C++ logging goes to stderr and drowns ours; keep warnings and errors.
    if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
        std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "1");
    }
    if std::env::var_os("TENSORFLOW_DIR").is_none() {
        let local = [
            std::path::PathBuf::from(PROJECT_LOCAL),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PROJECT_LOCAL),
        ];
        if let Some(dir) = local.iter().find(|d| d.join("libtensorflow.so").is_file()) {
            std::env::set_var("TENSORFLOW_DIR", dir);
        }
    }
}

fn ensure_library() -> Result<(), EngineError> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            tensorflow::library::load().map_err(|e| {
                format!("TensorFlow backend unavailable: libtensorflow.so could not be loaded ({e}); run `make deps` or set TENSORFLOW_DIR to the folder holding libtensorflow.so")
            })
        })
        .clone()
        .map_err(|reason| EngineError::BackendUnavailable {
            backend: NAME.into(),
            reason,
        })
}

fn session_options(threads: usize) -> Result<SessionOptions, tensorflow::Status> {
    let mut opts = SessionOptions::new();
    // ConfigProto: intra_op_parallelism_threads (field 2), inter_op_parallelism_threads (field 5).
    let intra = threads.clamp(1, 127) as u8;
    opts.set_config(&[0x10, intra, 0x28, 1])?;
    Ok(opts)
}

fn load(req: &LoadRequest) -> Result<Box<dyn Backend>, EngineError> {
    let options: Options = parse_options(NAME, req)?;
    let load_err = |message: String| EngineError::ModelLoad {
        path: req.path.clone(),
        message,
    };
    let tf_err = |e: tensorflow::Status| load_err(e.to_string());
    ensure_library()?;
    let opts = session_options(req.threads).map_err(tf_err)?;
    let mut graph = Graph::new();
    let (session, input, outputs) = match req.format {
        ModelFormat::TfFrozen => {
            let bytes = std::fs::read(&req.path).map_err(|e| load_err(e.to_string()))?;
            graph
                .import_graph_def(&bytes, &ImportGraphDefOptions::new())
                .map_err(|e| {
                    load_err(format!(
                        "{e} (not a valid frozen GraphDef: truncated or corrupt?)"
                    ))
                })?;
            let session = Session::new(&opts, &graph).map_err(tf_err)?;
            let input_name = req.input_name.clone().ok_or_else(|| {
                load_err(
                    "a tf-frozen model needs [input] name = \"<op>:<index>\" in model.toml".into(),
                )
            })?;
            let input = endpoint(&graph, &input_name).map_err(load_err)?;
            let mut outputs = Vec::new();
            for name in &req.outputs {
                outputs.push((name.clone(), endpoint(&graph, name).map_err(load_err)?));
            }
            (session, input, outputs)
        }
        ModelFormat::TfSavedModel => {
            let bundle = SavedModelBundle::load(&opts, ["serve"], &mut graph, &req.path)
                .map_err(|e| load_err(format!("{e} (not a loadable SavedModel folder)")))?;
            let sig_name = options.signature.as_deref().unwrap_or(DEFAULT_SIGNATURE);
            let sig = bundle.meta_graph_def().get_signature(sig_name).map_err(|_| {
                let mut have: Vec<&String> = bundle.meta_graph_def().signatures().keys().collect();
                have.sort();
                load_err(format!(
                    "the SavedModel has no signature '{sig_name}' (it has: {}); set `signature` under [backend.tensorflow] in model.toml",
                    have.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let info = match &req.input_name {
                Some(key) => sig.get_input(key).map_err(|_| {
                    load_err(format!(
                        "signature '{sig_name}' has no input '{key}' (it has: {})",
                        sorted_keys(sig.inputs())
                    ))
                })?,
                None if sig.inputs().len() == 1 => sig
                    .inputs()
                    .values()
                    .next()
                    .ok_or_else(|| load_err("empty signature".into()))?,
                None => {
                    return Err(load_err(format!(
                        "signature '{sig_name}' has several inputs ({}); name one in [input] name",
                        sorted_keys(sig.inputs())
                    )))
                }
            };
            let input = endpoint_from(&graph, info.name()).map_err(load_err)?;
            if let Some(dims) = info.shape().dims() {
                let declared: Vec<Option<usize>> = (0..dims)
                    .map(|i| info.shape()[i].and_then(|d| usize::try_from(d).ok()))
                    .collect();
                check_input_shape(&declared, &req.input_shape, &info.name().name)?;
            }
            let mut outputs = Vec::new();
            for key in &req.outputs {
                let out = sig.get_output(key).map_err(|_| {
                    load_err(format!(
                        "signature '{sig_name}' has no output '{key}' (it has: {}); fix the decoder's tensor names in model.toml",
                        sorted_keys(sig.outputs())
                    ))
                })?;
                outputs.push((
                    key.clone(),
                    endpoint_from(&graph, out.name()).map_err(load_err)?,
                ));
            }
            (bundle.session, input, outputs)
        }
        // The registry only hands this backend the formats in SPEC.
        ModelFormat::Onnx => {
            return Err(EngineError::FormatNotSupported {
                backend: NAME.into(),
                format: req.format,
                runs_on: super::running(req.format).join(" or "),
            })
        }
    };
    let wanted = match req.input_dtype {
        crate::model::DType::F32 => DataType::Float,
        crate::model::DType::U8 => DataType::UInt8,
    };
    if input.dtype != wanted {
        return Err(load_err(format!(
            "input is {} but model.toml says dtype {:?}",
            input.dtype, req.input_dtype
        )));
    }
    Ok(Box::new(TfBackend {
        inner: Mutex::new(TfSession {
            session,
            input,
            outputs,
            _graph: graph,
        }),
    }))
}

fn sorted_keys(map: &std::collections::HashMap<String, tensorflow::TensorInfo>) -> String {
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort();
    keys.join(", ")
}

fn endpoint(graph: &Graph, tensor: &str) -> Result<Endpoint, String> {
    let name = OutputName::from_str(tensor)
        .or_else(|_| OutputName::from_str(&format!("{tensor}:0")))
        .map_err(|e| format!("bad tensor name '{tensor}': {e}"))?;
    endpoint_from(graph, &name)
}

fn endpoint_from(graph: &Graph, name: &OutputName) -> Result<Endpoint, String> {
    let op = graph
        .operation_by_name(&name.name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "the graph has no tensor '{}:{}'; fix the tensor name in model.toml",
                name.name, name.index
            )
        })?;
    if name.index < 0 || name.index as usize >= op.num_outputs() {
        return Err(format!(
            "operation '{}' has {} outputs, not index {}",
            name.name,
            op.num_outputs(),
            name.index
        ));
    }
    let dtype = op.output_type(name.index as usize);
    Ok(Endpoint {
        op,
        index: name.index,
        dtype,
    })
}

impl Backend for TfBackend {
    fn run(&self, input: &InputTensor) -> Result<Outputs, EngineError> {
        let err = |e: tensorflow::Status| EngineError::Inference {
            message: e.to_string(),
        };
        let inner = self.inner.lock().map_err(|_| EngineError::Inference {
            message: "TensorFlow session poisoned by an earlier panic".into(),
        })?;
        let dims: Vec<u64> = input.shape().iter().map(|d| *d as u64).collect();
        let f32_tensor;
        let u8_tensor;
        let mut args = SessionRunArgs::new();
        match input {
            InputTensor::F32(a) => {
                let std = a.as_standard_layout();
                let data = std.as_slice().unwrap_or_default();
                f32_tensor = Tensor::<f32>::new(&dims).with_values(data).map_err(err)?;
                args.add_feed(&inner.input.op, inner.input.index, &f32_tensor);
            }
            InputTensor::U8(a) => {
                let std = a.as_standard_layout();
                let data = std.as_slice().unwrap_or_default();
                u8_tensor = Tensor::<u8>::new(&dims).with_values(data).map_err(err)?;
                args.add_feed(&inner.input.op, inner.input.index, &u8_tensor);
            }
        }
        let tokens: Vec<_> = inner
            .outputs
            .iter()
            .map(|(name, ep)| (name.clone(), ep.dtype, args.request_fetch(&ep.op, ep.index)))
            .collect();
        inner.session.run(&mut args).map_err(err)?;
        let mut out = Outputs::default();
        for (name, dtype, token) in tokens {
            let array = match dtype {
                DataType::Float => to_array(args.fetch::<f32>(token).map_err(err)?, |x| x),
                DataType::Int64 => to_array(args.fetch::<i64>(token).map_err(err)?, |x| x as f32),
                DataType::Int32 => to_array(args.fetch::<i32>(token).map_err(err)?, |x| x as f32),
                DataType::UInt8 => to_array(args.fetch::<u8>(token).map_err(err)?, f32::from),
                other => {
                    return Err(EngineError::Inference {
                        message: format!("output '{name}' has unsupported type {other}"),
                    })
                }
            }?;
            out.0.insert(name, array);
        }
        Ok(out)
    }
}

fn to_array<T: tensorflow::TensorType + Copy>(
    t: Tensor<T>,
    f: impl Fn(T) -> f32,
) -> Result<ArrayD<f32>, EngineError> {
    let shape: Vec<usize> = t.dims().iter().map(|d| *d as usize).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), t.iter().map(|x| f(*x)).collect()).map_err(|e| {
        EngineError::Inference {
            message: e.to_string(),
        }
    })
}
