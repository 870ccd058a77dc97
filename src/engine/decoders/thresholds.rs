//! The thresholds every decoder shares, parsed and checked here once for all of them,
//! and the one confidence check the CLI and the twin use too.

use serde::Deserialize;

/// A setting outside its range. Callers put the setting's name in front:
/// `--min-confidence must be within 0..1, got 2`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be within {range}, got {value}")]
pub struct OutOfRange {
    pub range: &'static str,
    pub value: String,
}

/// The one check for a confidence threshold: finite and within 0..=1 (NaN is refused).
pub fn check_min_confidence(value: f32) -> Result<f32, OutOfRange> {
    check_unit(value)
}

fn check_unit(value: f32) -> Result<f32, OutOfRange> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(OutOfRange {
            range: "0..1",
            value: value.to_string(),
        })
    }
}

/// Upper bound for `max_detections`: far above any real frame, low enough to bound NMS work.
const MAX_DETECTIONS_LIMIT: usize = 10_000;
const DEFAULT_MAX_DETECTIONS: usize = 100;

/// What a decoder kind declares: its default confidence, and whether the shared NMS runs
/// after it (false when the graph already ran NMS).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub min_confidence: f32,
    pub nms: bool,
}

/// `min_confidence`, `nms_iou` and `max_detections` from a `[decoder]` table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Candidates below this score are dropped (a live filter may override it).
    pub min_confidence: f32,
    /// IoU threshold for the shared NMS; `None` when the graph already ran NMS.
    pub nms_iou: Option<f32>,
    /// At most this many detections survive NMS.
    pub max_detections: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    min_confidence: Option<f32>,
    nms_iou: Option<f32>,
    max_detections: Option<usize>,
}

const KEYS: [&str; 3] = ["min_confidence", "nms_iou", "max_detections"];

impl Thresholds {
    /// Takes the shared keys out of `table` (the decoder parses what is left) and checks them.
    pub(crate) fn take(table: &mut toml::Table, defaults: Defaults) -> Result<Thresholds, String> {
        let mut own = toml::Table::new();
        for key in KEYS {
            if let Some(v) = table.remove(key) {
                own.insert(key.to_string(), v);
            }
        }
        let raw: Raw = toml::Value::Table(own)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        let field = |name: &'static str| move |e: OutOfRange| format!("{name} {e}");
        let min_confidence = check_unit(raw.min_confidence.unwrap_or(defaults.min_confidence))
            .map_err(field("min_confidence"))?;
        let nms_iou =
            match (defaults.nms, raw.nms_iou, raw.max_detections) {
                (true, Some(iou), _) => Some(check_unit(iou).map_err(field("nms_iou"))?),
                (true, None, _) => return Err("missing field `nms_iou`".into()),
                (false, None, None) => None,
                (false, _, _) => return Err(
                    "this model runs NMS inside its graph: nms_iou and max_detections do not apply"
                        .into(),
                ),
            };
        let max_detections = raw.max_detections.unwrap_or(DEFAULT_MAX_DETECTIONS);
        if !(1..=MAX_DETECTIONS_LIMIT).contains(&max_detections) {
            return Err(format!(
                "max_detections must be within 1..{MAX_DETECTIONS_LIMIT}, got {max_detections}"
            ));
        }
        Ok(Thresholds {
            min_confidence,
            nms_iou,
            max_detections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NMS: Defaults = Defaults {
        min_confidence: 0.25,
        nms: true,
    };
    const IN_GRAPH: Defaults = Defaults {
        min_confidence: 0.5,
        nms: false,
    };

    fn take(text: &str, d: Defaults) -> (Result<Thresholds, String>, toml::Table) {
        let mut t: toml::Table = toml::from_str(text).expect("toml");
        (Thresholds::take(&mut t, d), t)
    }

    #[test]
    fn shared_keys_are_taken_out_and_defaults_filled_in() {
        let (t, rest) = take("output = \"y\"\nnms_iou = 0.45", NMS);
        assert_eq!(
            t,
            Ok(Thresholds {
                min_confidence: 0.25,
                nms_iou: Some(0.45),
                max_detections: 100
            })
        );
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["output"]);
        let (t, _) = take("min_confidence = 0.6", IN_GRAPH);
        assert_eq!(t.map(|t| (t.min_confidence, t.nms_iou)), Ok((0.6, None)));
    }

    #[test]
    fn out_of_range_nan_and_misplaced_values_are_refused() {
        for (text, d, want) in [
            (
                "nms_iou = 0.5\nmin_confidence = 1.5",
                NMS,
                "min_confidence must be within 0..1, got 1.5",
            ),
            (
                "nms_iou = 0.5\nmin_confidence = nan",
                NMS,
                "min_confidence must be within 0..1, got NaN",
            ),
            ("nms_iou = -0.1", NMS, "nms_iou must be within 0..1"),
            (
                "nms_iou = 0.5\nmax_detections = 0",
                NMS,
                "max_detections must be within 1..10000",
            ),
            ("min_confidence = 0.5", NMS, "missing field `nms_iou`"),
            ("nms_iou = 0.5", IN_GRAPH, "runs NMS inside its graph"),
            ("nms_iou = \"high\"", NMS, "invalid type"),
        ] {
            let (t, _) = take(text, d);
            let err = t.expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_public_check_is_the_same_rule() {
        assert_eq!(check_min_confidence(0.0), Ok(0.0));
        assert_eq!(check_min_confidence(1.0), Ok(1.0));
        for bad in [-0.01, 1.01, f32::NAN, f32::INFINITY] {
            let e = check_min_confidence(bad).expect_err("refused");
            assert_eq!(e.range, "0..1");
        }
        assert_eq!(
            check_min_confidence(2.0).map_err(|e| format!("--min-confidence {e}")),
            Err("--min-confidence must be within 0..1, got 2".into())
        );
    }
}
