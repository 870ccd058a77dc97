//! NanoDet GFL heads: per stride, class scores [1,N,C] (already 0..1) and
//! box distributions [1,N,4*(reg_max+1)] (left, top, right, bottom; softmax, expectation x stride).

use serde::Deserialize;

use super::{parse_config, Decoder, Defaults, RawDetection};
use crate::engine::backends::Outputs;
use crate::engine::EngineError;
use crate::model::InputSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    strides: Vec<u32>,
    reg_max: usize,
    scores: Vec<String>,
    boxes: Vec<String>,
    /// Cell centers sit at (x + offset) * stride; NanoDet-m uses 0.
    #[serde(default)]
    center_offset: f32,
}

struct NanoDet {
    c: Config,
    input_w: u32,
    input_h: u32,
}

pub(super) const DEFAULTS: Defaults = Defaults {
    min_confidence: 0.35,
    nms: true,
};

pub(super) fn build(table: &toml::Table, input: &InputSpec) -> Result<Box<dyn Decoder>, String> {
    let c: Config = parse_config(table)?;
    if c.scores.len() != c.strides.len() || c.boxes.len() != c.strides.len() {
        return Err("scores, boxes and strides must have one entry per stride".into());
    }
    if c.strides.contains(&0) {
        return Err("strides must be > 0".into());
    }
    // decode() allocates reg_max + 1 bins per frame and reads rows of 4 * (reg_max + 1).
    let max = crate::defaults::NANODET_MAX_REG_MAX;
    if c.reg_max > max {
        return Err(format!(
            "reg_max = {} is above the limit of {max}: NanoDet heads use 7 to 16",
            c.reg_max
        ));
    }
    Ok(Box::new(NanoDet {
        c,
        input_w: input.width,
        input_h: input.height,
    }))
}

impl Decoder for NanoDet {
    fn outputs(&self) -> Vec<String> {
        self.c.scores.iter().chain(&self.c.boxes).cloned().collect()
    }

    fn decode(&self, outputs: &Outputs, min_score: f32) -> Result<Vec<RawDetection>, EngineError> {
        let c = &self.c;
        // reg_max is bounded when the decoder is built, so this cannot overflow.
        let bins = c.reg_max + 1;
        let (iw, ih) = (self.input_w as f32, self.input_h as f32);
        let mut out = Vec::new();
        let mut dist = vec![0f32; bins];
        for ((stride, score_name), box_name) in c.strides.iter().zip(&c.scores).zip(&c.boxes) {
            let fw = self.input_w.div_ceil(*stride) as usize;
            let fh = self.input_h.div_ceil(*stride) as usize;
            let (boxes, n) = super::rows(outputs, box_name, 4 * bins)?;
            if Some(n) != fw.checked_mul(fh) {
                return Err(EngineError::DecodeFailed {
                    message: format!(
                        "output '{box_name}' has {n} cells but stride {stride} on {}x{} gives {}",
                        self.input_w,
                        self.input_h,
                        fw * fh
                    ),
                });
            }
            let classes = outputs.get(score_name)?.len() / n.max(1);
            let (scores, _) = super::rows(outputs, score_name, classes.max(1))?;
            let s = *stride as f32;
            for i in 0..n {
                let row = &scores[i * classes..(i + 1) * classes];
                let Some((cls, score)) = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(c, s)| (c, *s))
                else {
                    continue;
                };
                if score < min_score {
                    continue;
                }
                let cx = ((i % fw) as f32 + c.center_offset) * s;
                let cy = ((i / fw) as f32 + c.center_offset) * s;
                let mut d = [0f32; 4];
                for (side, dv) in d.iter_mut().enumerate() {
                    let logits =
                        &boxes[i * 4 * bins + side * bins..i * 4 * bins + (side + 1) * bins];
                    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for (p, l) in dist.iter_mut().zip(logits) {
                        *p = (l - m).exp();
                        sum += *p;
                    }
                    let expect: f32 = dist.iter().enumerate().map(|(k, p)| k as f32 * p).sum();
                    *dv = expect / sum * s;
                }
                out.push(RawDetection {
                    class: cls,
                    score,
                    bbox: [
                        ((cx - d[0]) / iw).clamp(0.0, 1.0),
                        ((cy - d[1]) / ih).clamp(0.0, 1.0),
                        ((cx + d[2]) / iw).clamp(0.0, 1.0),
                        ((cy + d[3]) / ih).clamp(0.0, 1.0),
                    ],
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(reg_max: u64) -> toml::Table {
        toml::from_str(&format!(
            "strides = [8]\nreg_max = {reg_max}\nscores = [\"s\"]\nboxes = [\"b\"]"
        ))
        .expect("toml")
    }

    fn input() -> InputSpec {
        toml::from_str(
            "width = 16\nheight = 16\nlayout = \"nhwc\"\ndtype = \"u8\"\ncolor = \"rgb\"",
        )
        .expect("input")
    }

    #[test]
    fn reg_max_is_bounded_when_built() {
        let max = crate::defaults::NANODET_MAX_REG_MAX;
        assert!(build(&table(7), &input()).is_ok());
        assert!(build(&table(max as u64), &input()).is_ok());
        for huge in [max as u64 + 1, 1 << 40, i64::MAX as u64] {
            let e = build(&table(huge), &input()).err().expect("refused");
            assert!(
                e.contains(&format!("reg_max = {huge}")) && e.contains("limit"),
                "{e}"
            );
        }
    }
}
