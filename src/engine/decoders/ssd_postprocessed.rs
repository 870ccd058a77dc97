//! TF Object Detection API outputs with NMS already inside the graph:
//! boxes [1,N,4] (ymin,xmin,ymax,xmax normalized), scores [1,N], classes [1,N], num_detections [1].

use serde::Deserialize;

use super::{parse_config, Decoder, Defaults, RawDetection};
use crate::engine::backends::Outputs;
use crate::engine::EngineError;
use crate::model::InputSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    boxes: String,
    scores: String,
    classes: String,
    num_detections: Option<String>,
    /// TF OD API class ids are 1-based; label index = class - class_offset.
    #[serde(default = "one")]
    class_offset: i64,
}

fn one() -> i64 {
    1
}

struct SsdPostprocessed(Config);

pub(super) const DEFAULTS: Defaults = Defaults {
    min_confidence: 0.5,
    nms: false,
};

pub(super) fn build(table: &toml::Table, _input: &InputSpec) -> Result<Box<dyn Decoder>, String> {
    let c: Config = parse_config(table)?;
    Ok(Box::new(SsdPostprocessed(c)))
}

impl Decoder for SsdPostprocessed {
    fn outputs(&self) -> Vec<String> {
        let c = &self.0;
        let mut v = vec![c.boxes.clone(), c.scores.clone(), c.classes.clone()];
        v.extend(c.num_detections.clone());
        v
    }

    fn decode(&self, outputs: &Outputs, min_score: f32) -> Result<Vec<RawDetection>, EngineError> {
        let c = &self.0;
        let (boxes, n) = super::rows(outputs, &c.boxes, 4)?;
        let (scores, ns) = super::rows(outputs, &c.scores, 1)?;
        let (classes, nc) = super::rows(outputs, &c.classes, 1)?;
        let mut count = n.min(ns).min(nc);
        if let Some(name) = &c.num_detections {
            let (num, _) = super::rows(outputs, name, 1)?;
            if let Some(k) = num.first() {
                count = count.min(k.max(0.0) as usize);
            }
        }
        let mut out = Vec::new();
        for i in 0..count {
            if scores[i] < min_score {
                continue;
            }
            let class = classes[i].round() as i64 - c.class_offset;
            if class < 0 {
                continue;
            }
            let b = &boxes[i * 4..i * 4 + 4];
            out.push(RawDetection {
                class: class as usize,
                score: scores[i],
                bbox: [b[1], b[0], b[3], b[2]],
            });
        }
        Ok(out)
    }
}
