//! Zones, lines and the event/counts knobs: the twin's `zones`/`lines` and `--zones FILE.json`
//! share this schema, e.g.
//! `{"zones": {"door": {"polygon": [[0.1,0.5],[0.4,0.5],[0.4,1]], "classes": ["person"]}},
//!   "lines": {"gate": {"from": [0.5,0], "to": [0.5,1]}}}`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::geometry::{self, Point};
use crate::defaults;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneConfig {
    /// Vertices, normalized 0..1; the polygon closes itself.
    pub polygon: Vec<Point>,
    /// Labels this zone tracks; empty: all.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Frames in a row before membership flips, either way (inertia against flicker).
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// A `loitering` event once a track has stayed longer than this; 0: off.
    #[serde(default)]
    pub loiter_secs: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LineConfig {
    /// Directed: crossing from the left of from->to (as seen on the image) to its right is
    /// `in`; see [`geometry::crossing`].
    pub from: Point,
    pub to: Point,
    #[serde(default)]
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SceneConfig {
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneConfig>,
    #[serde(default)]
    pub lines: BTreeMap<String, LineConfig>,
    /// Counts go out at least this often (stream seconds), and on change.
    #[serde(default = "default_counts_every")]
    pub counts_every_secs: f32,
    /// Change-driven counts go out at most this often (stream seconds); 0: on every change.
    #[serde(default = "default_counts_min")]
    pub counts_min_secs: f32,
    /// A track gets an `update` at least this often (stream seconds).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: f32,
    /// A track that stays put this long becomes stationary; 0: never.
    #[serde(default = "default_stationary")]
    pub stationary_secs: f32,
    /// Events of the same kind within this many seconds share one message (a hub meters
    /// messages); 0: each event on its own, at once.
    #[serde(default = "default_events_batch")]
    pub events_batch_secs: f32,
}

fn default_min_frames() -> u32 {
    defaults::ZONE_MIN_FRAMES
}
fn default_counts_every() -> f32 {
    defaults::COUNTS_EVERY_SECS
}
fn default_counts_min() -> f32 {
    defaults::COUNTS_MIN_SECS
}
fn default_heartbeat() -> f32 {
    defaults::EVENT_HEARTBEAT_SECS
}
fn default_stationary() -> f32 {
    defaults::STATIONARY_SECS
}
fn default_events_batch() -> f32 {
    defaults::EVENTS_BATCH_SECS
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig {
            zones: BTreeMap::new(),
            lines: BTreeMap::new(),
            counts_every_secs: defaults::COUNTS_EVERY_SECS,
            counts_min_secs: defaults::COUNTS_MIN_SECS,
            heartbeat_secs: defaults::EVENT_HEARTBEAT_SECS,
            stationary_secs: defaults::STATIONARY_SECS,
            events_batch_secs: defaults::EVENTS_BATCH_SECS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SceneConfigError {
    #[error("cannot read zones file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("zones file {path} is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("zones file {path} is not valid zones JSON: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("zones file {path} is invalid: {}", .errors.join("; "))]
    Invalid { path: String, errors: Vec<String> },
}

const MAX_NAME: usize = 64;
/// An event never waits longer than this for company.
const MAX_BATCH_SECS: f32 = 60.0;
const MAX_CLASS: usize = 128;
const MAX_CLASSES: usize = 256;
const MAX_SECS: f32 = 86_400.0;
const MAX_MIN_FRAMES: u32 = 1000;

impl SceneConfig {
    /// Parses and validates a JSON document; every problem is listed.
    pub fn from_json(doc: &serde_json::Value) -> Result<SceneConfig, Vec<String>> {
        let c: SceneConfig =
            serde_json::from_value(doc.clone()).map_err(|e| vec![e.to_string()])?;
        let errors = c.validate();
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    /// `--zones FILE.json`: read (bounded), parse and validate.
    pub fn load(path: &Path) -> Result<SceneConfig, SceneConfigError> {
        let p = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| SceneConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let max = defaults::SCENE_FILE_MAX_BYTES;
        let mut text = String::new();
        file.take(max + 1)
            .read_to_string(&mut text)
            .map_err(|source| SceneConfigError::Read {
                path: p.clone(),
                source,
            })?;
        if text.len() as u64 > max {
            return Err(SceneConfigError::TooLarge { path: p, max });
        }
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| SceneConfigError::Parse {
                path: p.clone(),
                source,
            })?;
        Self::from_json(&doc).map_err(|errors| SceneConfigError::Invalid { path: p, errors })
    }

    /// Every problem, each naming its field (`zones.door.polygon[2]`, ...).
    pub fn validate(&self) -> Vec<String> {
        let mut e = validate_shapes(&self.zones, &self.lines, "");
        check_secs(&mut e, "countsEverySecs", self.counts_every_secs, 1.0);
        check_secs(&mut e, "countsMinSecs", self.counts_min_secs, 0.0);
        check_secs(&mut e, "heartbeatSecs", self.heartbeat_secs, 1.0);
        check_secs(&mut e, "stationarySecs", self.stationary_secs, 0.0);
        let b = self.events_batch_secs;
        if !(b.is_finite() && (0.0..=MAX_BATCH_SECS).contains(&b)) {
            e.push(format!(
                "eventsBatchSecs must be within 0..{MAX_BATCH_SECS} seconds (an event waits that long), got {b}"
            ));
        }
        e
    }
}

/// The rules on one set of zones and lines (the top-level set, or one source's own);
/// `prefix` goes before each field (`sources.cam1.` gives `sources.cam1.zones.door...`).
pub fn validate_shapes(
    zones: &BTreeMap<String, ZoneConfig>,
    lines: &BTreeMap<String, LineConfig>,
    prefix: &str,
) -> Vec<String> {
    let mut e = Vec::new();
    let shapes = zones.len() + lines.len();
    if shapes > defaults::SCENE_MAX_SHAPES {
        let head = prefix.trim_end_matches('.');
        let head = if head.is_empty() {
            String::new()
        } else {
            format!("{head}: ")
        };
        e.push(format!(
            "{head}{shapes} zones and lines in all; at most {}",
            defaults::SCENE_MAX_SHAPES
        ));
    }
    for (name, z) in zones {
        let f = format!("{prefix}zones.{}", shown(name));
        check_name(&mut e, &f, name);
        check_polygon(&mut e, &f, &z.polygon);
        check_classes(&mut e, &f, &z.classes);
        if !(1..=MAX_MIN_FRAMES).contains(&z.min_frames) {
            e.push(format!(
                "{f}.minFrames must be 1..{MAX_MIN_FRAMES}, got {}",
                z.min_frames
            ));
        }
        check_secs(&mut e, &format!("{f}.loiterSecs"), z.loiter_secs, 0.0);
    }
    for (name, l) in lines {
        let f = format!("{prefix}lines.{}", shown(name));
        check_name(&mut e, &f, name);
        check_point(&mut e, &format!("{f}.from"), l.from);
        check_point(&mut e, &format!("{f}.to"), l.to);
        if l.from == l.to {
            e.push(format!(
                "{f} has zero length: from and to are the same point"
            ));
        }
        check_classes(&mut e, &f, &l.classes);
    }
    e
}

/// Names as for models: letters, digits, '.', '_', '-'; 1..64 characters.
fn check_name(e: &mut Vec<String>, field: &str, v: &str) {
    if v.is_empty() || v.len() > MAX_NAME {
        e.push(format!(
            "{field}: name must be 1..{MAX_NAME} characters (got {})",
            v.len()
        ));
    } else if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        e.push(format!(
            "{field}: name may only hold letters, digits, '.', '_' and '-'"
        ));
    }
}

/// A name safe to echo in an error: cut short and stripped of control characters.
fn shown(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    if s.len() < name.len() {
        format!("{s}...")
    } else {
        s
    }
}

fn check_point(e: &mut Vec<String>, field: &str, p: Point) -> bool {
    let ok = p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v));
    if !ok {
        e.push(format!(
            "{field} [{}, {}] must be finite and within 0..1",
            p[0], p[1]
        ));
    }
    ok
}

fn check_polygon(e: &mut Vec<String>, f: &str, poly: &[Point]) {
    let n = poly.len();
    if !(3..=defaults::ZONE_MAX_POINTS).contains(&n) {
        e.push(format!(
            "{f}.polygon has {n} points; it needs 3..{}",
            defaults::ZONE_MAX_POINTS
        ));
        return;
    }
    let mut ok = true;
    for (i, p) in poly.iter().enumerate() {
        ok &= check_point(e, &format!("{f}.polygon[{i}]"), *p);
    }
    if !ok {
        return;
    }
    if let Some(i) = (0..n).find(|&i| poly[i] == poly[(i + 1) % n]) {
        e.push(format!(
            "{f}.polygon[{}] repeats the point before it",
            (i + 1) % n
        ));
    } else if poly
        .iter()
        .all(|p| geometry::side(poly[0], poly[1], *p) == 0.0)
    {
        e.push(format!(
            "{f}.polygon has zero area (all points on one line)"
        ));
    } else if let Some((i, j)) = geometry::self_intersection(poly) {
        e.push(format!(
            "{f}.polygon crosses itself (edges {i} and {j}); list the points in order around the zone"
        ));
    }
}

fn check_classes(e: &mut Vec<String>, f: &str, classes: &[String]) {
    if classes.len() > MAX_CLASSES {
        e.push(format!(
            "{f}.classes has {} entries; at most {MAX_CLASSES}",
            classes.len()
        ));
    }
    if classes
        .iter()
        .any(|c| c.trim().is_empty() || c.len() > MAX_CLASS)
    {
        e.push(format!(
            "{f}.classes entries must be 1..{MAX_CLASS} characters, not blank"
        ));
    }
}

fn check_secs(e: &mut Vec<String>, field: &str, v: f32, min: f32) {
    if !(v.is_finite() && v >= min && v <= MAX_SECS) {
        e.push(format!(
            "{field} must be within {min}..{MAX_SECS} seconds, got {v}"
        ));
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
