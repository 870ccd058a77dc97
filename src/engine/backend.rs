//! The one trait every inference backend implements. Backends see tensors and
//! tensor names, never detections.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::ArrayD;

use super::EngineError;
use crate::model::{DType, ModelFormat};

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
        self.0.get(name).ok_or_else(|| EngineError::Decode {
            message: format!(
                "the model produced no output named '{name}' (it has: {}); fix the decoder's tensor names in model.toml",
                self.names().join(", ")
            ),
        })
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }
}

/// Everything a backend needs to load a model; built by the engine from the manifest.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub format: ModelFormat,
    /// The weights file (or SavedModel folder).
    pub path: PathBuf,
    /// Input tensor name from the manifest, if it names one.
    pub input_name: Option<String>,
    pub input_shape: Vec<usize>,
    pub input_dtype: DType,
    /// Output tensor names the decoder reads.
    pub outputs: Vec<String>,
    /// SavedModel signature (`serving_default` when absent).
    pub signature: Option<String>,
    pub threads: usize,
}

pub trait Backend: Send + Sync {
    /// Runs one batch-1 inference and returns at least the requested outputs.
    fn run(&self, input: &InputTensor) -> Result<Outputs, EngineError>;
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
