//! The published message: the Azure Video Analyzer inference schema, boxes normalized 0..1.

use serde::{Deserialize, Serialize};

use crate::engine::Detection;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InferenceMessage {
    pub timestamp: String,
    pub source: String,
    pub frame: FrameInfo,
    pub model: ModelInfo,
    pub inferences: Vec<Inference>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameInfo {
    pub pts_ms: u64,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Inference {
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: String,
    #[serde(rename = "inferenceId")]
    pub inference_id: String,
    pub entity: Entity,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entity {
    pub tag: Tag,
    #[serde(rename = "box")]
    pub bbox: crate::engine::BBox,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    pub value: String,
    pub confidence: f32,
}

impl InferenceMessage {
    pub fn new(
        source: &str,
        frame: FrameInfo,
        model: ModelInfo,
        detections: &[Detection],
    ) -> InferenceMessage {
        InferenceMessage {
            timestamp: now_iso(),
            source: source.to_string(),
            frame,
            model,
            inferences: detections
                .iter()
                .map(|d| Inference {
                    kind: "entity".into(),
                    subtype: "objectDetection".into(),
                    inference_id: uuid::Uuid::new_v4().simple().to_string(),
                    entity: Entity {
                        tag: Tag {
                            value: d.label.clone(),
                            confidence: round(d.confidence, 4),
                        },
                        bbox: crate::engine::BBox {
                            l: round(d.bbox.l, 4),
                            t: round(d.bbox.t, 4),
                            w: round(d.bbox.w, 4),
                            h: round(d.bbox.h, 4),
                        },
                        id: None,
                    },
                })
                .collect(),
        }
    }
}

/// Wall-clock time as every message and reported property writes it (UTC, milliseconds).
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn round(x: f32, digits: i32) -> f32 {
    let p = 10f32.powi(digits);
    (x * p).round() / p
}
