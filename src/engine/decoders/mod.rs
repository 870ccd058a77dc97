//! Decoders turn raw output tensors into boxes. One file per decoder, one registry line each;
//! a model picks its decoder with `[decoder] kind = "..."` in model.toml.

use serde::de::DeserializeOwned;

use super::backend::Outputs;
use super::EngineError;
use crate::model::InputSpec;

pub mod nanodet;
pub mod ssd_anchors;
pub mod ssd_postprocessed;
pub mod yolov8;

/// A detection in model-input space: `bbox` is (x1, y1, x2, y2) normalized to the input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDetection {
    pub class: usize,
    pub score: f32,
    pub bbox: [f32; 4],
}

pub trait Decoder: Send + Sync {
    /// Output tensor names this decoder reads, in a stable order.
    fn outputs(&self) -> Vec<String>;
    /// Candidates scoring at least `min_score`, before NMS.
    fn decode(&self, outputs: &Outputs, min_score: f32) -> Result<Vec<RawDetection>, EngineError>;
    /// IoU threshold for the shared NMS; `None` when the graph already ran NMS.
    fn nms_iou(&self) -> Option<f32>;
    /// The manifest's default confidence threshold.
    fn min_confidence(&self) -> f32;
    /// At most this many detections survive NMS.
    fn max_detections(&self) -> usize {
        default_max_detections()
    }
}

type BuildFn = fn(&toml::Table, &InputSpec) -> Result<Box<dyn Decoder>, String>;

const REGISTRY: &[(&str, BuildFn)] = &[
    ("ssd-postprocessed", ssd_postprocessed::build),
    ("ssd-anchors", ssd_anchors::build),
    ("nanodet", nanodet::build),
    ("yolov8", yolov8::build),
];

pub fn kinds() -> Vec<&'static str> {
    REGISTRY.iter().map(|(k, _)| *k).collect()
}

/// Builds the decoder named by `table.kind`, which parses the rest of the table itself.
pub fn build(table: &toml::Table, input: &InputSpec) -> Result<Box<dyn Decoder>, String> {
    let kind = table
        .get("kind")
        .and_then(|k| k.as_str())
        .ok_or_else(|| format!("[decoder] needs kind = one of: {}", kinds().join(", ")))?;
    let (_, build) = REGISTRY.iter().find(|(k, _)| *k == kind).ok_or_else(|| {
        format!(
            "unknown decoder kind '{kind}'; expected one of: {}",
            kinds().join(", ")
        )
    })?;
    build(table, input).map_err(|e| format!("[decoder] kind = \"{kind}\": {e}"))
}

/// Parses a decoder's own config type from the `[decoder]` table, minus `kind`.
pub(crate) fn parse_config<T: DeserializeOwned>(table: &toml::Table) -> Result<T, String> {
    let mut t = table.clone();
    t.remove("kind");
    toml::Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The logit at which sigmoid reaches `p`; lets decoders skip exp() for hopeless candidates.
pub(crate) fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Reads a tensor as rows of `width` values after dropping leading batch dims of size 1.
pub(crate) fn rows<'a>(
    outputs: &'a Outputs,
    name: &str,
    width: usize,
) -> Result<(&'a [f32], usize), EngineError> {
    let a = outputs.get(name)?;
    let data = a.as_slice().ok_or_else(|| EngineError::Decode {
        message: format!("output '{name}' is not contiguous"),
    })?;
    if width == 0 || data.len() % width != 0 {
        return Err(EngineError::Decode {
            message: format!(
                "output '{name}' has shape {:?}, which is not rows of {width}",
                a.shape()
            ),
        });
    }
    Ok((data, data.len() / width))
}

fn default_max_detections() -> usize {
    100
}
