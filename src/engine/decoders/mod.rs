//! Decoders turn raw output tensors into boxes. One file per decoder, one registry line each;
//! a model picks its decoder with `[decoder] kind = "..."` in model.toml. The shared
//! thresholds (`min_confidence`, `nms_iou`, `max_detections`) are parsed and checked in
//! `thresholds.rs`; a decoder file parses only its own keys.

use serde::de::DeserializeOwned;

use super::backends::Outputs;
use super::EngineError;
use crate::model::InputSpec;

mod nanodet;
mod ssd_anchors;
mod ssd_postprocessed;
mod thresholds;
mod yolov8;

pub use thresholds::{check_min_confidence, Defaults, OutOfRange, Thresholds};

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
}

/// Builds a decoder from its own keys of the `[decoder]` table (`kind` and thresholds removed).
type BuildFn = fn(&toml::Table, &InputSpec) -> Result<Box<dyn Decoder>, String>;

const REGISTRY: &[(&str, BuildFn, Defaults)] = &[
    (
        "ssd-postprocessed",
        ssd_postprocessed::build,
        ssd_postprocessed::DEFAULTS,
    ),
    ("ssd-anchors", ssd_anchors::build, ssd_anchors::DEFAULTS),
    ("nanodet", nanodet::build, nanodet::DEFAULTS),
    ("yolov8", yolov8::build, yolov8::DEFAULTS),
];

fn kinds() -> String {
    let k: Vec<&str> = REGISTRY.iter().map(|(k, _, _)| *k).collect();
    k.join(", ")
}

/// Builds the decoder named by `table.kind` and checks the shared thresholds.
pub fn build(
    table: &toml::Table,
    input: &InputSpec,
) -> Result<(Box<dyn Decoder>, Thresholds), String> {
    let kind = table
        .get("kind")
        .and_then(|k| k.as_str())
        .ok_or_else(|| format!("[decoder] needs kind = one of: {}", kinds()))?;
    let (_, build, defaults) = REGISTRY
        .iter()
        .find(|(k, _, _)| *k == kind)
        .ok_or_else(|| {
            format!(
                "unknown decoder kind '{kind}'; expected one of: {}",
                kinds()
            )
        })?;
    let in_context = |e: String| format!("[decoder] kind = \"{kind}\": {e}");
    let mut own = table.clone();
    own.remove("kind");
    let thresholds = Thresholds::take(&mut own, *defaults).map_err(in_context)?;
    let decoder = build(&own, input).map_err(in_context)?;
    Ok((decoder, thresholds))
}

/// Parses a decoder's own config type from what `build` left of the `[decoder]` table.
fn parse_config<T: DeserializeOwned>(table: &toml::Table) -> Result<T, String> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The logit at which sigmoid reaches `p`; lets decoders skip exp() for hopeless candidates.
fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Reads a tensor as rows of `width` values after dropping leading batch dims of size 1.
fn rows<'a>(
    outputs: &'a Outputs,
    name: &str,
    width: usize,
) -> Result<(&'a [f32], usize), EngineError> {
    let a = outputs.get(name)?;
    let data = a.as_slice().ok_or_else(|| EngineError::DecodeFailed {
        message: format!("output '{name}' is not contiguous"),
    })?;
    if width == 0 || data.len() % width != 0 {
        return Err(EngineError::DecodeFailed {
            message: format!(
                "output '{name}' has shape {:?}, which is not rows of {width}",
                a.shape()
            ),
        });
    }
    Ok((data, data.len() / width))
}
