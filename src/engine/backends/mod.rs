//! Inference backends: the one `Backend` trait, the tensors it sees, and the registry.
//!
//! Adding a backend means:
//! 1. one file here, `engine/backends/<name>.rs`, holding `pub(super) const SPEC: Spec`
//!    (the model formats it runs, its `load` function, optional process set-up) and, if it
//!    has settings, its own options type parsed with [`parse_options`] from the manifest's
//!    `[backend.<name>]` table;
//! 2. one line in the `registry!` call below;
//! 3. one Cargo feature of the same name (with its optional dependencies).
//!
//! Nothing outside this folder names a backend: names, defaults, error hints and the
//! format-to-backend mapping are all derived from the registry. Backends see tensors and
//! tensor names, never detections.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::ArrayD;
use serde::de::DeserializeOwned;

use super::EngineError;
use crate::model::{DType, ModelFormat};

macro_rules! registry {
    ($($module:ident = $feature:literal),+ $(,)?) => {
        $(#[cfg(feature = $feature)] mod $module;)+

        /// Every backend name this build knows, compiled in or not (for validation messages).
        pub const ALL_NAMES: &[&str] = &[$($feature),+];

        static REGISTRY: &[Entry] = &[$(
            #[cfg(feature = $feature)]
            Entry { name: $feature, spec: Some($module::SPEC) },
            #[cfg(not(feature = $feature))]
            Entry { name: $feature, spec: None },
        )+];
    };
}

// Module = Cargo feature = backend name. Order is preference: the first compiled-in backend
// that runs a model's format is its default.
registry! {
    ort = "ort",
    tract = "tract",
    tensorflow = "tensorflow",
}

type LoadFn = fn(&LoadRequest) -> Result<Box<dyn Backend>, EngineError>;

/// What a backend file declares about itself.
#[derive(Clone, Copy)]
pub struct Spec {
    /// Model formats it runs.
    pub formats: &'static [ModelFormat],
    pub load: LoadFn,
    /// Process-wide set-up (environment variables) that must run before any thread exists.
    pub prepare_process: Option<fn()>,
}

/// One registry line: a name, and the backend's spec when it is compiled in.
struct Entry {
    name: &'static str,
    spec: Option<Spec>,
}

pub trait Backend: Send + Sync {
    /// Runs one batch-1 inference and returns at least the requested outputs.
    fn run(&self, input: &InputTensor) -> Result<Outputs, EngineError>;
}

/// A batch-1 input tensor, already in the model's layout and dtype.
#[derive(Debug, Clone)]
pub enum InputTensor {
    F32(ArrayD<f32>),
    U8(ArrayD<u8>),
}

impl InputTensor {
    pub fn shape(&self) -> &[usize] {
        match self {
            InputTensor::F32(a) => a.shape(),
            InputTensor::U8(a) => a.shape(),
        }
    }
}

/// Named output tensors, converted to f32 whatever their type in the graph.
#[derive(Debug, Default, Clone)]
pub struct Outputs(pub HashMap<String, ArrayD<f32>>);

impl Outputs {
    pub fn get(&self, name: &str) -> Result<&ArrayD<f32>, EngineError> {
        self.0.get(name).ok_or_else(|| {
            let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
            names.sort_unstable();
            EngineError::DecodeFailed {
                message: format!(
                    "the model produced no output named '{name}' (it has: {}); fix the decoder's tensor names in model.toml",
                    names.join(", ")
                ),
            }
        })
    }
}

/// Everything a backend needs to load a model; built by the engine from the manifest.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub format: ModelFormat,
    /// The weights file (or SavedModel folder).
    pub path: PathBuf,
    /// The model.toml it came from, for error messages.
    pub manifest: PathBuf,
    /// Input tensor name from the manifest, if it names one.
    pub input_name: Option<String>,
    pub input_shape: Vec<usize>,
    pub input_dtype: DType,
    /// Output tensor names the decoder reads.
    pub outputs: Vec<String>,
    pub threads: usize,
    /// How many instances of this model the engine loads (backends may stop spinning
    /// their intra-op threads when several instances share the cores).
    pub instances: usize,
    /// What instances of one model may share (ORT: its prepacked-weights container); each
    /// backend puts and reads its own type here.
    pub shared: SharedSlot,
    /// This backend's own `[backend.<name>]` table from model.toml (empty when absent).
    pub options: toml::Table,
}

/// Opaque per-model state shared between a model's instances, owned by the engine.
pub type SharedSlot = std::sync::Arc<std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>>;

/// Parses a backend's own options type from its `[backend.<name>]` table.
pub fn parse_options<T: DeserializeOwned>(
    backend: &str,
    req: &LoadRequest,
) -> Result<T, EngineError> {
    toml::Value::Table(req.options.clone())
        .try_into()
        .map_err(|e: toml::de::Error| EngineError::BackendConfig {
            manifest: req.manifest.clone(),
            backend: backend.to_string(),
            message: e.message().to_string(),
        })
}

/// Backend names compiled into this binary, in preference order.
pub fn available() -> Vec<&'static str> {
    compiled().map(|(name, _)| name).collect()
}

fn compiled() -> impl Iterator<Item = (&'static str, Spec)> {
    REGISTRY.iter().filter_map(|e| e.spec.map(|s| (e.name, s)))
}

/// Compiled-in backends that run `format`, in preference order.
pub fn running(format: ModelFormat) -> Vec<&'static str> {
    compiled()
        .filter(|(_, s)| s.formats.contains(&format))
        .map(|(name, _)| name)
        .collect()
}

/// Runs every compiled-in backend's process-wide set-up.
///
/// # Safety
/// Call once, first thing in `main`, before any other thread exists: backends may set
/// environment variables, which is unsound while other threads read the environment.
pub unsafe fn prepare_process() {
    for (_, spec) in compiled() {
        if let Some(prepare) = spec.prepare_process {
            prepare();
        }
    }
}

pub fn load(name: &str, request: &LoadRequest) -> Result<Box<dyn Backend>, EngineError> {
    let Some(entry) = REGISTRY.iter().find(|e| e.name == name) else {
        return Err(EngineError::UnknownBackend {
            backend: name.to_string(),
            available: available().join(", "),
        });
    };
    let Some(spec) = entry.spec else {
        return Err(EngineError::BackendUnavailable {
            backend: name.to_string(),
            reason: format!("this binary was built without it; rebuild with `--features {name}`"),
        });
    };
    if !spec.formats.contains(&request.format) {
        let runs_on = running(request.format);
        return Err(EngineError::FormatNotSupported {
            backend: name.to_string(),
            format: request.format,
            runs_on: if runs_on.is_empty() {
                "no backend in this build".into()
            } else {
                runs_on.join(" or ")
            },
        });
    }
    (spec.load)(request)
}

/// Compares a graph's declared input shape (None = symbolic) with what the manifest feeds.
pub fn check_input_shape(
    declared: &[Option<usize>],
    wanted: &[usize],
    input_name: &str,
) -> Result<(), EngineError> {
    let matches = declared.len() == wanted.len()
        && declared
            .iter()
            .zip(wanted)
            .all(|(d, w)| d.is_none_or(|d| d == *w));
    if matches {
        Ok(())
    } else {
        let shown: Vec<String> = declared
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        Err(EngineError::InputShape {
            input: input_name.to_string(),
            declared: format!("[{}]", shown.join(",")),
            wanted: format!("{wanted:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(format: ModelFormat) -> LoadRequest {
        LoadRequest {
            format,
            path: PathBuf::from("/nonexistent/model"),
            manifest: PathBuf::from("/nonexistent/model.toml"),
            input_name: None,
            input_shape: vec![1, 3, 4, 4],
            input_dtype: DType::F32,
            outputs: vec![],
            threads: 1,
            instances: 1,
            shared: SharedSlot::default(),
            options: toml::Table::new(),
        }
    }

    #[test]
    fn names_come_from_the_registry_and_compiled_ones_are_a_subset() {
        let all: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
        assert_eq!(all, ALL_NAMES);
        assert!(available().iter().all(|n| ALL_NAMES.contains(n)));
        assert_eq!(available().contains(&"ort"), cfg!(feature = "ort"));
        assert_eq!(available().contains(&"tract"), cfg!(feature = "tract"));
    }

    #[test]
    fn unknown_and_wrong_format_backends_are_refused_before_loading() {
        let err = load("openvino", &request(ModelFormat::Onnx))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown backend 'openvino'")));
        for name in available() {
            for format in [
                ModelFormat::Onnx,
                ModelFormat::TfFrozen,
                ModelFormat::TfSavedModel,
            ] {
                if running(format).contains(&name) {
                    continue;
                }
                let err = load(name, &request(format)).err().map(|e| e.to_string());
                assert!(
                    err.as_deref().is_some_and(|e| e.contains("cannot run")),
                    "{name} / {format}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn options_are_parsed_per_backend_and_unknown_fields_refused() {
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        struct Opts {
            signature: Option<String>,
        }
        let mut req = request(ModelFormat::TfSavedModel);
        let o: Opts = parse_options("x", &req).expect("empty table is fine");
        assert!(o.signature.is_none());
        req.options
            .insert("signatur".into(), toml::Value::String("a".into()));
        let err = parse_options::<Opts>("x", &req).expect_err("typo refused");
        assert!(err.to_string().contains("[backend.x]"), "{err}");
    }

    #[test]
    fn input_shape_check_accepts_symbolic_dims_only() {
        assert!(check_input_shape(&[None, Some(3), Some(4), Some(4)], &[1, 3, 4, 4], "x").is_ok());
        assert!(
            check_input_shape(&[Some(1), Some(3), Some(5), Some(4)], &[1, 3, 4, 4], "x").is_err()
        );
        assert!(check_input_shape(&[Some(1), Some(3)], &[1, 3, 4, 4], "x").is_err());
    }
}
