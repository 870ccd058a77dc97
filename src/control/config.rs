//! The module twin's desired properties: the whole runtime config, validated as one
//! document before anything is applied. These types are the schema's single source of
//! truth: `docs/desired-properties.schema.json` is generated from them (see `schema()`),
//! and a test fails when the committed file and the types disagree.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::backends::ALL_NAMES;
use crate::pipeline::OutputMode;
use crate::scene::{LineConfig, SceneConfig, ZoneConfig};

/// The whole runtime config. A patch is merged into the last accepted document (JSON merge
/// patch, null deletes) and the result is validated as a whole before anything is applied.
/// Keys starting with '$' (twin metadata) are ignored. Fields the twin leaves unset keep the
/// values the module was started with (its command line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "edgelens module twin: desired properties",
    extend("patternProperties" = {"^\\$": {}})
)]
pub struct DesiredConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    /// The one video source; among `sources` it is the one named `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
    /// Several video sources by name, served by one model in fair turns; each has its own
    /// reconnect, stats, tracker and maxFps, and its name is the `source` of its messages.
    /// At most 16 with `source`. Twin `sources` replace the command line's source(s);
    /// adding, changing or removing one starts, restarts or stops only that source.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 16, "propertyNames" = {"pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"}))]
    pub sources: Option<BTreeMap<String, SourceConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputConfig>,
    /// Named polygons, coordinates normalized 0..1 of the frame; a track is inside when its
    /// box's bottom centre is. At most 32 zones and lines in all, 64 points each (and 256
    /// with every source's own). Applying zones restarts nothing. They apply to every source
    /// that has no `zones` or `lines` of its own (`sources.<name>.zones`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<BTreeMap<String, ZoneConfig>>,
    /// Named directed lines with in/out counters (crossing from the left of from->to to its
    /// right, as seen on the image, is `in`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<BTreeMap<String, LineConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotsConfig>,
}

/// Where best snapshots per track are uploaded (the blob module's connection string comes
/// from the deployment's environment, never from the twin).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// Blob container on the Blob Storage on IoT Edge module (Azure naming rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$"))]
    pub container: Option<String>,
}

/// Which model serves. A change loads the new model on a separate thread and swaps it in
/// between two frames; on failure the old model keeps serving and reported.model.status is
/// 'failed'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A bundled model folder (models/<name>) when uri is absent; a label otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,128}$"))]
    pub name: Option<String>,
    /// file:// model folder or .tar/.tar.gz archive of one, or https:// archive (downloaded
    /// to the cache, size-capped).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^(file|https)://"))]
    pub uri: Option<String>,
    /// sha256 of the archive, or of the weights file for a folder. Required for https://.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    pub sha256: Option<String>,
    /// Inference backend; unset picks the first the model's manifest lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ALL_NAMES))]
    pub backend: Option<String>,
    /// Intra-op threads per engine instance; unset: auto (tuned with `instances` on the
    /// stream when the model loads; the choice is reported in `model.layout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub threads: Option<u32>,
    /// Engine instances working on consecutive frames (messages stay in frame order);
    /// unset: auto.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub instances: Option<u32>,
}

/// The video source. A change of uri or params restarts the source only; maxFps applies at
/// the next frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceConfig {
    /// A video file path, file:// or rtsp:// URL, /dev/videoN, or a preset name (file, rtsp,
    /// usb, test).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: Option<String>,
    /// Values for the preset's properties (e.g. latency_ms); typed by the element.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 2048}))]
    pub params: Option<BTreeMap<String, String>>,
    /// Infer at most this many frames per second; others are skipped and counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 240))]
    pub max_fps: Option<f64>,
    /// This camera's own zones (same schema and rules as the top-level `zones`, normalized
    /// to this source's frame). A source that sets `zones` or `lines` uses its own set
    /// only: the top-level zones and lines are not merged in (`{}` means none). Without
    /// either it uses the top-level ones. Applying them restarts nothing and leaves other
    /// sources' tracks alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zones: Option<BTreeMap<String, ZoneConfig>>,
    /// This camera's own lines (see `zones` for which set a source uses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<BTreeMap<String, LineConfig>>,
}

impl SourceConfig {
    /// True when this source has its own zones and lines instead of the top-level ones.
    pub fn has_own_scene(&self) -> bool {
        self.zones.is_some() || self.lines.is_some()
    }
}

/// Filters applied to every frame's detections; they apply at the next frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DetectionConfig {
    /// Overrides the manifest's confidence threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_confidence: Option<f64>,
    /// Keep only these labels; empty keeps all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128)))]
    pub classes: Option<Vec<String>>,
}

/// Where messages go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// EdgeHub output the detections go to (routes: FROM
    /// /messages/modules/edgelens/outputs/<name>).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub name: Option<String>,
    /// `frames`: one message per frame with detections (output `name`); `events`: per-track
    /// new/update/end events (output `events`) and counts (output `counts`); `both`.
    /// Module mode defaults to `events`, what fits a hub's daily quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutputMode>,
    /// Counts messages at least this often (stream seconds), and on change.
    #[serde(skip_serializing_if = "Option::is_none", rename = "countsEverySecs")]
    #[schemars(range(min = 1.0, max = 86400.0))]
    pub counts_every_secs: Option<f32>,
    /// Counts sent because they changed go out at most this often (stream seconds), so a
    /// busy scene does not send one per second; 0: on every change.
    #[serde(skip_serializing_if = "Option::is_none", rename = "countsMinSecs")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub counts_min_secs: Option<f32>,
    /// A track gets an `update` at least this often (stream seconds).
    #[serde(skip_serializing_if = "Option::is_none", rename = "heartbeatSecs")]
    #[schemars(range(min = 1.0, max = 86400.0))]
    pub heartbeat_secs: Option<f32>,
    /// A track that stays put this long becomes stationary (no updates but the heartbeat);
    /// 0: never.
    #[serde(skip_serializing_if = "Option::is_none", rename = "stationarySecs")]
    #[schemars(range(min = 0.0, max = 86400.0))]
    pub stationary_secs: Option<f32>,
    /// Events of the same kind (type, label, zone) within this many seconds share one
    /// message of at most 4 KB (one IoT Hub metering chunk); 0: each event at once.
    #[serde(skip_serializing_if = "Option::is_none", rename = "eventsBatchSecs")]
    #[schemars(range(min = 0.0, max = 60.0))]
    pub events_batch_secs: Option<f32>,
}

/// The JSON schema of the desired properties, as committed in `docs/`.
pub fn schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(DesiredConfig))
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "$id".into(),
            "https://github.com/edgelens/edgelens/docs/desired-properties.schema.json".into(),
        );
    }
    s
}

/// `base` with every field that `over` sets replaced, field by field: the command line is
/// the base, the twin overrides only what it names.
pub fn overlay(base: &DesiredConfig, over: &DesiredConfig) -> DesiredConfig {
    fn pick<T: Clone>(b: &Option<T>, o: &Option<T>) -> Option<T> {
        o.clone().or_else(|| b.clone())
    }
    fn section<T: Clone + Default>(
        b: &Option<T>,
        o: &Option<T>,
        f: impl Fn(&T, &T) -> T,
    ) -> Option<T> {
        match (b, o) {
            (Some(b), Some(o)) => Some(f(b, o)),
            _ => o.clone().or_else(|| b.clone()),
        }
    }
    DesiredConfig {
        model: section(&base.model, &over.model, |b, o| ModelConfig {
            name: pick(&b.name, &o.name),
            // A twin model with a uri is a different model: the command line's bundled name
            // does not label it, and vice versa.
            uri: if o.name.is_some() || o.uri.is_some() {
                o.uri.clone()
            } else {
                b.uri.clone()
            },
            sha256: if o.name.is_some() || o.uri.is_some() {
                o.sha256.clone()
            } else {
                pick(&b.sha256, &o.sha256)
            },
            backend: pick(&b.backend, &o.backend),
            threads: pick(&b.threads, &o.threads),
            instances: pick(&b.instances, &o.instances),
        }),
        // The twin's `sources` replace the command line's: its `source` stays only if named.
        sources: pick(&base.sources, &over.sources),
        source: if over.sources.is_some() && over.source.is_none() {
            None
        } else {
            section(&base.source, &over.source, overlay_source)
        },
        detection: section(&base.detection, &over.detection, |b, o| DetectionConfig {
            min_confidence: pick(&b.min_confidence, &o.min_confidence),
            classes: pick(&b.classes, &o.classes),
        }),
        output: section(&base.output, &over.output, |b, o| OutputConfig {
            name: pick(&b.name, &o.name),
            mode: pick(&b.mode, &o.mode),
            counts_every_secs: pick(&b.counts_every_secs, &o.counts_every_secs),
            counts_min_secs: pick(&b.counts_min_secs, &o.counts_min_secs),
            heartbeat_secs: pick(&b.heartbeat_secs, &o.heartbeat_secs),
            stationary_secs: pick(&b.stationary_secs, &o.stationary_secs),
            events_batch_secs: pick(&b.events_batch_secs, &o.events_batch_secs),
        }),
        zones: pick(&base.zones, &over.zones),
        lines: pick(&base.lines, &over.lines),
        snapshots: section(&base.snapshots, &over.snapshots, |b, o| SnapshotsConfig {
            container: pick(&b.container, &o.container),
        }),
    }
}

/// A twin source over the command line's, field by field.
fn overlay_source(b: &SourceConfig, o: &SourceConfig) -> SourceConfig {
    fn pick<T: Clone>(b: &Option<T>, o: &Option<T>) -> Option<T> {
        o.clone().or_else(|| b.clone())
    }
    SourceConfig {
        uri: pick(&b.uri, &o.uri),
        // Params belong to a source: a new uri starts from the twin's params alone.
        params: if o.uri.is_some() {
            o.params.clone()
        } else {
            pick(&b.params, &o.params)
        },
        max_fps: pick(&b.max_fps, &o.max_fps),
        // A twin source with its own zones or lines replaces the command line's set whole.
        zones: if o.has_own_scene() {
            o.zones.clone()
        } else {
            b.zones.clone()
        },
        lines: if o.has_own_scene() {
            o.lines.clone()
        } else {
            b.lines.clone()
        },
    }
}

/// JSON merge patch (RFC 7386): what a desired-properties patch does to the document.
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Removes twin metadata (`$version`, `$metadata`, ...) at every level.
pub fn strip_metadata(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.starts_with('$'));
        for child in o.values_mut() {
            strip_metadata(child);
        }
    }
}

/// Parses and validates a whole desired document; every problem is listed.
pub fn parse(doc: &serde_json::Value) -> Result<DesiredConfig, Vec<String>> {
    let mut clean = doc.clone();
    strip_metadata(&mut clean);
    let config: DesiredConfig = serde_json::from_value(clean).map_err(|e| vec![e.to_string()])?;
    let errors = validate(&config);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// The scene (zones, lines and the event knobs) a config asks for.
pub fn scene(c: &DesiredConfig) -> SceneConfig {
    let d = SceneConfig::default();
    let o = c.output.clone().unwrap_or_default();
    SceneConfig {
        zones: c.zones.clone().unwrap_or_default(),
        lines: c.lines.clone().unwrap_or_default(),
        counts_every_secs: o.counts_every_secs.unwrap_or(d.counts_every_secs),
        counts_min_secs: o.counts_min_secs.unwrap_or(d.counts_min_secs),
        heartbeat_secs: o.heartbeat_secs.unwrap_or(d.heartbeat_secs),
        stationary_secs: o.stationary_secs.unwrap_or(d.stationary_secs),
        events_batch_secs: o.events_batch_secs.unwrap_or(d.events_batch_secs),
    }
}

/// At most 64 characters of a hostile string go into a message, redacted first: cut short,
/// a URL would lose the '@' that shows where its password ends.
pub fn truncate(s: &str) -> String {
    let s = crate::redact::text(s);
    if s.chars().count() > 64 {
        let cut = s.char_indices().nth(61).map(|(i, _)| i).unwrap_or(s.len());
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

pub use super::validate::{check_name, validate};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
