//! Validation of the desired config as a whole: every problem is listed, each naming its
//! field and what is allowed.

use super::config::{scene, truncate, DesiredConfig, ModelConfig, SourceConfig};
use crate::engine::backends::ALL_NAMES;

const MAX_URI: usize = 2048;
const MAX_NAME: usize = 128;

/// Names of models, outputs, zones: short, and safe in a path, a topic and a label.
pub fn check_name(errors: &mut Vec<String>, field: &str, v: &str, max: usize) {
    if v.is_empty() || v.len() > max {
        errors.push(format!(
            "{field} must be 1..{max} characters (got {})",
            v.len()
        ));
    } else if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || v.starts_with('.')
    {
        errors.push(format!(
            "{field} '{}' may only hold letters, digits, '.', '_' and '-', and may not start with '.'",
            truncate(v)
        ));
    }
}

pub fn validate(c: &DesiredConfig) -> Vec<String> {
    let mut e = Vec::new();
    if let Some(m) = &c.model {
        validate_model(&mut e, m);
    }
    if let Some(s) = &c.source {
        validate_source(&mut e, "source", s);
    }
    for (name, s) in c.sources.iter().flatten() {
        validate_source(&mut e, &format!("sources.{}", truncate(name)), s);
    }
    super::sources::check(c, &mut e);
    if let Some(d) = &c.detection {
        if let Some(mc) = d.min_confidence {
            if let Err(msg) = crate::engine::check_min_confidence(mc as f32) {
                e.push(format!("detection.minConfidence: {msg}"));
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
    if let Some(n) = c.output.as_ref().and_then(|o| o.name.as_ref()) {
        check_name(&mut e, "output.name", n, 64);
    }
    e.extend(scene(c).validate());
    super::scenes::check(c, &mut e);
    if let Some(name) = c.snapshots.as_ref().and_then(|s| s.container.as_ref()) {
        if let Err(err) = crate::snapshot::ContainerName::parse(name) {
            e.push(format!("snapshots.container: {err}"));
        }
    }
    e
}

fn validate_model(e: &mut Vec<String>, m: &ModelConfig) {
    if m.name.is_none() && m.uri.is_none() {
        e.push("model needs a name (bundled model) or a uri".into());
    }
    if let Some(n) = &m.name {
        check_name(e, "model.name", n, MAX_NAME);
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
                truncate(&crate::redact::url(u))
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
    if let Some(k) = m.instances {
        let max = crate::engine::layout::MAX_INSTANCES;
        if !(1..=max as u32).contains(&k) {
            e.push(format!(
                "model.instances must be 1..{max} engine instances (leave it unset for auto), got {k}"
            ));
        }
    }
}

fn validate_source(e: &mut Vec<String>, field: &str, s: &SourceConfig) {
    if let Some(u) = &s.uri {
        if u.is_empty() || u.len() > MAX_URI {
            e.push(format!("{field}.uri must be 1..{MAX_URI} characters"));
        }
    }
    if let Some(p) = &s.params {
        if p.len() > 32
            || p.iter()
                .any(|(k, v)| k.is_empty() || k.len() > MAX_NAME || v.len() > MAX_URI)
        {
            e.push(format!(
                "{field}.params: at most 32 entries, keys 1..128 and values up to 2048 characters"
            ));
        }
    }
    if let Some(f) = s.max_fps {
        // A tiny positive value would round to 0 (no limit) on its way to the pipeline.
        if !(crate::defaults::MIN_MAX_FPS..=240.0).contains(&f) {
            e.push(format!(
                "{field}.maxFps must be between {} and 240, got {f}",
                crate::defaults::MIN_MAX_FPS
            ));
        }
    }
}

#[cfg(test)]
mod instances_tests {
    use super::super::config::parse;

    #[test]
    fn model_instances_out_of_range_is_rejected_with_a_reason() {
        for bad in [0, 17, 1000] {
            let errs =
                parse(&serde_json::json!({"model": {"name": "x", "instances": bad}})).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].contains("model.instances must be 1..16"),
                "{errs:?}"
            );
            assert!(
                errs[0].contains("auto"),
                "the reason says how to get auto: {errs:?}"
            );
        }
        let ok = parse(&serde_json::json!({"model": {"name": "x", "instances": 2, "threads": 1}}))
            .unwrap();
        let m = ok.model.unwrap();
        assert_eq!((m.instances, m.threads), (Some(2), Some(1)));
        let request = crate::control::model_load::layout_request(&m);
        assert_eq!((request.instances, request.threads), (Some(2), Some(1)));
        // Unset is auto.
        let auto = parse(&serde_json::json!({"model": {"name": "x"}})).unwrap();
        let request = crate::control::model_load::layout_request(&auto.model.unwrap());
        assert_eq!(request, crate::engine::LayoutRequest::default());
    }
}
