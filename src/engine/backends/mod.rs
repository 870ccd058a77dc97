//! Backend registry: one file per backend, one line per backend here.
//! Nothing outside this folder names a backend.

use super::backend::{Backend, LoadRequest};
use super::EngineError;

pub mod ort;
#[cfg(feature = "tensorflow")]
pub mod tensorflow;
#[cfg(feature = "tract")]
pub mod tract;

type LoadFn = fn(&LoadRequest) -> Result<Box<dyn Backend>, EngineError>;

const REGISTRY: &[(&str, LoadFn)] = &[
    ("ort", ort::load),
    #[cfg(feature = "tract")]
    ("tract", tract::load),
    #[cfg(feature = "tensorflow")]
    ("tensorflow", tensorflow::load),
];

/// Every backend name this build knows, compiled in or not, for validation messages.
pub const ALL_NAMES: &[&str] = &["ort", "tract", "tensorflow"];

pub fn available() -> Vec<&'static str> {
    REGISTRY.iter().map(|(name, _)| *name).collect()
}

pub fn load(name: &str, request: &LoadRequest) -> Result<Box<dyn Backend>, EngineError> {
    match REGISTRY.iter().find(|(n, _)| *n == name) {
        Some((_, load)) => load(request),
        None if ALL_NAMES.contains(&name) => Err(EngineError::BackendUnavailable {
            backend: name.to_string(),
            reason: "this binary was built without it; rebuild with `--features ".to_string()
                + name
                + "`",
        }),
        None => Err(EngineError::UnknownBackend {
            backend: name.to_string(),
            available: available().join(", "),
        }),
    }
}
