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
    let max = crate::defaults::DECODER_MAX_CLASSES;
    if c.num_classes == 0 || c.num_classes > max {
        return Err(format!(
            "num_classes = {} must be within 1..={max}: give the class count of the head \
             (COCO: 80)",
            c.num_classes
        ));
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
        // num_classes is bounded when the decoder is built; checked all the same.
        let width = self
            .c
            .num_classes
            .checked_add(4)
            .ok_or_else(|| EngineError::DecodeFailed {
                message: format!("num_classes = {} is too large", self.c.num_classes),
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(num_classes: u64) -> toml::Table {
        toml::from_str(&format!("output = \"o\"\nnum_classes = {num_classes}")).expect("toml")
    }

    #[test]
    fn num_classes_is_bounded_when_built() {
        let input: InputSpec = toml::from_str(
            "width = 32\nheight = 32\nlayout = \"nchw\"\ndtype = \"f32\"\ncolor = \"rgb\"",
        )
        .expect("input");
        assert!(build(&table(80), &input).is_ok());
        let max = crate::defaults::DECODER_MAX_CLASSES as u64;
        assert!(build(&table(max), &input).is_ok());
        for bad in [0, max + 1, i64::MAX as u64] {
            let e = build(&table(bad), &input).err().expect("refused");
            assert!(e.contains(&format!("num_classes = {bad}")), "{e}");
        }
    }
}
