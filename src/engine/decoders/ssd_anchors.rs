//! SSD heads with raw box encodings [1,A,4] (ty,tx,th,tw) and class logits [1,A,C];
//! anchors are generated from the manifest like the TF OD API's multiple-grid generator.

use serde::Deserialize;

use super::{logit, parse_config, sigmoid, Decoder, Defaults, RawDetection};
use crate::engine::backends::Outputs;
use crate::engine::EngineError;
use crate::model::InputSpec;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Score {
    Sigmoid,
    Softmax,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    boxes: String,
    logits: String,
    num_layers: usize,
    min_scale: f32,
    max_scale: f32,
    aspect_ratios: Vec<f32>,
    #[serde(default = "one")]
    interpolated_scale_aspect_ratio: f32,
    #[serde(default = "yes")]
    reduce_boxes_in_lowest_layer: bool,
    strides: Vec<u32>,
    /// y, x, h, w
    box_coder_scales: [f32; 4],
    score: Score,
    background_class: Option<usize>,
}

fn one() -> f32 {
    1.0
}
fn yes() -> bool {
    true
}

/// (y_center, x_center, height, width), normalized.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Anchor {
    cy: f32,
    cx: f32,
    h: f32,
    w: f32,
}

struct SsdAnchors {
    c: Config,
    anchors: Vec<Anchor>,
}

pub(super) const DEFAULTS: Defaults = Defaults {
    min_confidence: 0.5,
    nms: true,
};

pub(super) fn build(table: &toml::Table, input: &InputSpec) -> Result<Box<dyn Decoder>, String> {
    let c: Config = parse_config(table)?;
    if c.strides.len() != c.num_layers {
        return Err(format!(
            "strides has {} entries but num_layers = {}",
            c.strides.len(),
            c.num_layers
        ));
    }
    if c.num_layers == 0 || c.aspect_ratios.is_empty() || c.strides.contains(&0) {
        return Err("num_layers, aspect_ratios and strides must be non-empty and non-zero".into());
    }
    // Counted before any is made: the count comes from the manifest alone (input size,
    // strides, aspect ratios) and the graph's outputs are only checked per frame.
    let max = crate::defaults::SSD_MAX_ANCHORS;
    match anchor_count(&c, input.width, input.height) {
        Some(n) if n <= max => {}
        n => {
            return Err(format!(
                "input {}x{} with strides {:?} and {} aspect ratios gives {} anchors, above the \
                 limit of {max}: check [input] width/height, strides and aspect_ratios",
                input.width,
                input.height,
                c.strides,
                c.aspect_ratios.len(),
                n.map_or("too many".to_string(), |n| n.to_string())
            ))
        }
    }
    let anchors = generate_anchors(&c, input.width, input.height);
    Ok(Box::new(SsdAnchors { c, anchors }))
}

/// (scale, aspect ratio) of the anchors at each cell of `layer`.
fn layer_specs(c: &Config, layer: usize) -> Vec<(f32, f32)> {
    let (num_layers, min_scale, max_scale) = (c.num_layers, c.min_scale, c.max_scale);
    let scale = |i: usize| {
        if num_layers == 1 {
            min_scale
        } else {
            min_scale + (max_scale - min_scale) * i as f32 / (num_layers - 1) as f32
        }
    };
    let s = scale(layer);
    if layer == 0 && c.reduce_boxes_in_lowest_layer {
        return vec![(0.1, 1.0), (s, 2.0), (s, 0.5)];
    }
    let s_next = if layer + 1 < num_layers {
        scale(layer + 1)
    } else {
        1.0
    };
    let mut specs: Vec<(f32, f32)> = c.aspect_ratios.iter().map(|ar| (s, *ar)).collect();
    if c.interpolated_scale_aspect_ratio > 0.0 {
        specs.push(((s * s_next).sqrt(), c.interpolated_scale_aspect_ratio));
    }
    specs
}

/// How many anchors `generate_anchors` makes; `None` if the count overflows.
fn anchor_count(c: &Config, input_w: u32, input_h: u32) -> Option<usize> {
    c.strides
        .iter()
        .enumerate()
        .take(c.num_layers)
        .try_fold(0usize, |total, (layer, stride)| {
            let per_cell = if layer == 0 && c.reduce_boxes_in_lowest_layer {
                3
            } else {
                c.aspect_ratios.len() + usize::from(c.interpolated_scale_aspect_ratio > 0.0)
            };
            let fh = input_h.div_ceil(*stride) as usize;
            let fw = input_w.div_ceil(*stride) as usize;
            fh.checked_mul(fw)?
                .checked_mul(per_cell)
                .and_then(|n| total.checked_add(n))
        })
}

fn generate_anchors(c: &Config, input_w: u32, input_h: u32) -> Vec<Anchor> {
    let mut anchors = Vec::with_capacity(anchor_count(c, input_w, input_h).unwrap_or(0));
    for (layer, stride) in c.strides.iter().enumerate().take(c.num_layers) {
        let specs = layer_specs(c, layer);
        let fh = input_h.div_ceil(*stride) as usize;
        let fw = input_w.div_ceil(*stride) as usize;
        for y in 0..fh {
            for x in 0..fw {
                for (sc, ar) in &specs {
                    let r = ar.sqrt();
                    anchors.push(Anchor {
                        cy: (y as f32 + 0.5) / fh as f32,
                        cx: (x as f32 + 0.5) / fw as f32,
                        h: sc / r,
                        w: sc * r,
                    });
                }
            }
        }
    }
    anchors
}

impl Decoder for SsdAnchors {
    fn outputs(&self) -> Vec<String> {
        vec![self.c.boxes.clone(), self.c.logits.clone()]
    }

    fn decode(&self, outputs: &Outputs, min_score: f32) -> Result<Vec<RawDetection>, EngineError> {
        let c = &self.c;
        let (boxes, n) = super::rows(outputs, &c.boxes, 4)?;
        if n != self.anchors.len() {
            return Err(EngineError::DecodeFailed {
                message: format!(
                    "output '{}' has {n} boxes but the anchor parameters in model.toml give {}",
                    c.boxes,
                    self.anchors.len()
                ),
            });
        }
        let logits_t = outputs.get(&c.logits)?;
        let classes = logits_t.len() / n.max(1);
        let (logits, _) = super::rows(outputs, &c.logits, classes.max(1))?;
        let [sy, sx, sh, sw] = c.box_coder_scales;
        let threshold = logit(min_score);
        let mut out = Vec::new();
        let mut probs = vec![0f32; classes];
        for (i, a) in self.anchors.iter().enumerate() {
            let row = &logits[i * classes..(i + 1) * classes];
            match c.score {
                Score::Sigmoid => {
                    if !row.iter().any(|l| *l >= threshold) {
                        continue;
                    }
                    for (p, l) in probs.iter_mut().zip(row) {
                        *p = sigmoid(*l);
                    }
                }
                Score::Softmax => {
                    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for (p, l) in probs.iter_mut().zip(row) {
                        *p = (l - m).exp();
                        sum += *p;
                    }
                    probs.iter_mut().for_each(|p| *p /= sum);
                }
            }
            let mut decoded: Option<[f32; 4]> = None;
            for (cls, p) in probs.iter().enumerate() {
                if Some(cls) == c.background_class || *p < min_score {
                    continue;
                }
                let bbox = *decoded.get_or_insert_with(|| {
                    let r = &boxes[i * 4..i * 4 + 4];
                    let cy = r[0] / sy * a.h + a.cy;
                    let cx = r[1] / sx * a.w + a.cx;
                    let h = (r[2] / sh).exp() * a.h;
                    let w = (r[3] / sw).exp() * a.w;
                    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
                });
                let label = match c.background_class {
                    Some(bg) if cls > bg => cls - 1,
                    _ => cls,
                };
                out.push(RawDetection {
                    class: label,
                    score: *p,
                    bbox,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssd_300_has_1917_anchors() {
        // The bundled ssdlite-person head (TF OD API ssd_mobilenet_v2 anchor settings).
        let c: Config = parse_config(
            &toml::from_str(
                r#"
                boxes = "b"
                logits = "l"
                num_layers = 6
                min_scale = 0.2
                max_scale = 0.95
                aspect_ratios = [1.0, 2.0, 0.5, 3.0, 0.3333333]
                strides = [16, 32, 64, 128, 256, 512]
                box_coder_scales = [10.0, 10.0, 5.0, 5.0]
                score = "sigmoid"
                "#,
            )
            .expect("toml"),
        )
        .expect("config");
        let a = generate_anchors(&c, 300, 300);
        assert_eq!(a.len(), 1917);
        assert_eq!(anchor_count(&c, 300, 300), Some(1917));
        // First cell of the lowest layer: the small 0.1 square first.
        assert!((a[0].h - 0.1).abs() < 1e-6 && (a[0].cx - 0.5 / 19.0).abs() < 1e-6);
        // Last anchor: 1x1 layer, interpolated scale sqrt(0.95 * 1.0).
        let last = a[a.len() - 1];
        assert!((last.h - 0.95f32.sqrt()).abs() < 1e-5 && (last.cx - 0.5).abs() < 1e-6);
    }

    /// A one-layer, stride-1 head: width x height x 3 anchors.
    fn stride_one() -> toml::Table {
        toml::from_str(
            r#"
            boxes = "b"
            logits = "l"
            num_layers = 1
            min_scale = 0.2
            max_scale = 0.95
            aspect_ratios = [1.0]
            strides = [1]
            box_coder_scales = [10.0, 10.0, 5.0, 5.0]
            score = "sigmoid"
            "#,
        )
        .expect("toml")
    }

    fn input(side: u32) -> InputSpec {
        let text = format!(
            "width = {side}\nheight = {side}\nlayout = \"nhwc\"\ndtype = \"u8\"\ncolor = \"rgb\""
        );
        toml::from_str(&text).expect("input")
    }

    #[test]
    fn too_many_anchors_are_refused_before_any_is_made() {
        assert!(build(&stride_one(), &input(64)).is_ok());
        // 4096 x 4096 x 3 = 50 M anchors (800 MB): counted, refused, never allocated.
        let e = build(&stride_one(), &input(4096)).err().expect("refused");
        assert!(e.contains("50331648 anchors") && e.contains("limit"), "{e}");
        // A count that does not fit usize is refused too, not wrapped.
        let c: Config = parse_config(&stride_one()).expect("config");
        assert_eq!(anchor_count(&c, u32::MAX, u32::MAX), None);
        let e = build(&stride_one(), &input(u32::MAX))
            .err()
            .expect("refused");
        assert!(e.contains("too many anchors"), "{e}");
    }
}
