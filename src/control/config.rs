//! The module twin's desired properties: the whole runtime config, validated as one
//! document before anything is applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::backends::ALL_NAMES;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A bundled model folder name, or a label for `uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `file://` folder or archive, or `https://` archive (.tar / .tar.gz) of a model folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// sha256 of the archive, or of the weights file for a folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceConfig {
    /// A file path, rtsp:// URL, /dev/videoN, or preset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Preset placeholder values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fps: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DetectionConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

const MAX_URI: usize = 2048;
const MAX_NAME: usize = 128;

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

fn check_name(errors: &mut Vec<String>, field: &str, v: &str, max: usize) {
    if v.is_empty() || v.len() > max {
        errors.push(format!(
            "{field} must be 1..{max} characters (got {})",
            v.len()
        ));
    } else if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        errors.push(format!(
            "{field} '{v}' may only hold letters, digits, '.', '_' and '-'"
        ));
    }
}

pub fn validate(c: &DesiredConfig) -> Vec<String> {
    let mut e = Vec::new();
    if let Some(m) = &c.model {
        if m.name.is_none() && m.uri.is_none() {
            e.push("model needs a name (bundled model) or a uri".into());
        }
        if let Some(n) = &m.name {
            check_name(&mut e, "model.name", n, MAX_NAME);
        }
        if let Some(u) = &m.uri {
            if u.len() > MAX_URI {
                e.push(format!(
                    "model.uri is {} characters; at most {MAX_URI}",
                    u.len()
                ));
            } else if u.starts_with("https://") {
                if m.sha256.is_none() {
                    e.push("model.sha256 is required for https:// downloads".into());
                }
            } else if !u.starts_with("file://") {
                e.push(format!(
                    "model.uri '{}' must start with file:// or https://",
                    truncate(u)
                ));
            }
        }
        if let Some(s) = &m.sha256 {
            if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                e.push(format!(
                    "model.sha256 '{}' is not 64 hex digits",
                    truncate(s)
                ));
            }
        }
        if let Some(b) = &m.backend {
            if !ALL_NAMES.contains(&b.as_str()) {
                e.push(format!(
                    "model.backend '{}' is unknown; use one of {}",
                    truncate(b),
                    ALL_NAMES.join(", ")
                ));
            }
        }
        if let Some(t) = m.threads {
            if !(1..=64).contains(&t) {
                e.push(format!("model.threads must be 1..64, got {t}"));
            }
        }
    }
    if let Some(s) = &c.source {
        if let Some(u) = &s.uri {
            if u.is_empty() || u.len() > MAX_URI {
                e.push(format!("source.uri must be 1..{MAX_URI} characters"));
            }
        }
        if let Some(p) = &s.params {
            if p.len() > 32
                || p.iter()
                    .any(|(k, v)| k.len() > MAX_NAME || v.len() > MAX_URI)
            {
                e.push("source.params: at most 32 entries, keys up to 128 and values up to 2048 characters".into());
            }
        }
        if let Some(f) = s.max_fps {
            if !(f > 0.0 && f <= 240.0) {
                e.push(format!("source.maxFps must be in (0, 240], got {f}"));
            }
        }
    }
    if let Some(d) = &c.detection {
        if let Some(mc) = d.min_confidence {
            if !(0.0..=1.0).contains(&mc) {
                e.push(format!(
                    "detection.minConfidence must be within 0..1, got {mc}"
                ));
            }
        }
        if let Some(cl) = &d.classes {
            if cl.len() > 256 {
                e.push(format!(
                    "detection.classes has {} entries; at most 256",
                    cl.len()
                ));
            }
            if cl.iter().any(|c| c.is_empty() || c.len() > MAX_NAME) {
                e.push("detection.classes entries must be 1..128 characters".into());
            }
        }
    }
    if let Some(o) = &c.output {
        match &o.name {
            Some(n) => check_name(&mut e, "output.name", n, 64),
            None => e.push("output needs a name".into()),
        }
    }
    e
}

fn truncate(s: &str) -> String {
    if s.len() > 64 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(61).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_semantics() {
        let mut doc =
            json!({"model": {"name": "a", "threads": 2}, "detection": {"minConfidence": 0.5}});
        merge(
            &mut doc,
            &json!({"model": {"threads": null, "backend": "tract"}, "detection": null}),
        );
        assert_eq!(doc, json!({"model": {"name": "a", "backend": "tract"}}));
    }

    #[test]
    fn metadata_is_ignored_and_errors_are_collected() {
        let ok =
            parse(&json!({"$version": 3, "model": {"name": "ssdlite-person", "$metadata": {}}}))
                .unwrap();
        assert_eq!(ok.model.unwrap().name.as_deref(), Some("ssdlite-person"));
        let errs = parse(
            &json!({"model": {"name": "x", "threads": 0}, "detection": {"minConfidence": 2.0}}),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
