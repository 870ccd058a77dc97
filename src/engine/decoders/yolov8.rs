//! YOLOv8 detection head: one output [1, 4+C, N] with (cx, cy, w, h) in input pixels
//! followed by C class scores (already sigmoid). [1, N, 4+C] is accepted too.

use serde::Deserialize;

use super::{parse_config, Decoder, Defaults, RawDetection};
use crate::engine::backends::Outputs;
use crate::engine::EngineError;
use crate::model::InputSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    output: String,
    /// Number of classes; the other output dimension is the candidate count.
    num_classes: usize,
}

struct Yolov8 {
    c: Config,
    input_w: f32,
    input_h: f32,
}

pub(super) const DEFAULTS: Defaults = Defaults {
    min_confidence: 0.25,
    nms: true,
};

pub(super) fn build(table: &toml::Table, input: &InputSpec) -> Result<Box<dyn Decoder>, String> {
    let c: Config = parse_config(table)?;
    if c.num_classes == 0 {
        return Err("num_classes must be > 0".into());
    }
    Ok(Box::new(Yolov8 {
        c,
        input_w: input.width as f32,
        input_h: input.height as f32,
    }))
}

impl Decoder for Yolov8 {
    fn outputs(&self) -> Vec<String> {
        vec![self.c.output.clone()]
    }

    fn decode(&self, outputs: &Outputs, min_score: f32) -> Result<Vec<RawDetection>, EngineError> {
        let a = outputs.get(&self.c.output)?;
        let width = 4 + self.c.num_classes;
        let shape: Vec<usize> = a.shape().iter().cloned().filter(|d| *d != 1).collect();
        let data = a.as_slice().ok_or_else(|| EngineError::DecodeFailed {
            message: "yolov8 output is not contiguous".into(),
        })?;
        // Channel-major [4+C, N] (the export default) or row-major [N, 4+C].
        let (n, channel_major) = match shape.as_slice() {
            [c, n] if *c == width => (*n, true),
            [n, c] if *c == width => (*n, false),
            _ => {
                return Err(EngineError::DecodeFailed {
                    message: format!(
                        "output '{}' has shape {:?}; yolov8 with num_classes = {} needs [1, {width}, N]",
                        self.c.output,
                        a.shape(),
                        self.c.num_classes
                    ),
                })
            }
        };
        let at = |row: usize, i: usize| {
            if channel_major {
                data[row * n + i]
            } else {
                data[i * width + row]
            }
        };
        let mut out = Vec::new();
        for i in 0..n {
            let (cls, score) = (0..self.c.num_classes).map(|k| (k, at(4 + k, i))).fold(
                (0, f32::NEG_INFINITY),
                |best, x| if x.1 > best.1 { x } else { best },
            );
            if score < min_score {
                continue;
            }
            let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
            out.push(RawDetection {
                class: cls,
                score,
                bbox: [
                    ((cx - w / 2.0) / self.input_w).clamp(0.0, 1.0),
                    ((cy - h / 2.0) / self.input_h).clamp(0.0, 1.0),
                    ((cx + w / 2.0) / self.input_w).clamp(0.0, 1.0),
                    ((cy + h / 2.0) / self.input_h).clamp(0.0, 1.0),
                ],
            });
        }
        Ok(out)
    }
}
