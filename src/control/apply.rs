//! Pure: from (what runs now, a candidate desired document) to a plan of what changes.
//! No I/O and no clocks, so every rule here is a unit test (and a fuzz target).

use serde_json::Value;

use super::config::{self, DesiredConfig, ModelConfig};
use super::sources::SourceChanges;
use crate::defaults::MAX_DESIRED_BYTES;

/// What the module runs now, as far as applying a document is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    /// The command line's config: the base the twin overrides field by field.
    pub base: &'a DesiredConfig,
    /// The effective config applied last.
    pub applied: &'a DesiredConfig,
    /// The last model asked for: the one loading, or else the one serving. A document that
    /// asks for this model again starts no load.
    pub model_target: &'a ModelConfig,
}

/// What applying a document does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The effective config: the base with the twin's fields over it.
    pub config: DesiredConfig,
    /// Some source starts, stops or restarts (`sources` says which), or all restart.
    pub restart_source: bool,
    /// Per source: which start, stop, restart, or change only their maxFps.
    pub sources: SourceChanges,
    /// Snapshots are written by the pipeline: a new container restarts every source.
    pub restart_all: bool,
    /// Detection filters, maxFps or output changed: swap the live settings.
    pub settings_changed: bool,
    /// Load this model off the hot path.
    pub load_model: Option<ModelConfig>,
}

/// A desired patch merged into the last accepted document (JSON merge patch).
pub fn patched(document: &Value, patch: &Value) -> Result<Value, String> {
    if !patch.is_object() {
        return Err("desired patch is not a JSON object".into());
    }
    let mut candidate = document.clone();
    config::merge(&mut candidate, patch);
    Ok(candidate)
}

/// Validates the whole candidate document and says what must change. Every problem is
/// listed; on any, nothing is applied.
pub fn plan(document: &Value, current: Current<'_>) -> Result<Plan, Vec<String>> {
    let size = serde_json::to_vec(document)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_DESIRED_BYTES {
        return Err(vec![format!(
            "desired properties are {size} bytes; at most {MAX_DESIRED_BYTES}: remove what edgelens does not read"
        )]);
    }
    let twin = config::parse(document)?;
    let effective = config::overlay(current.base, &twin);
    // The twin's sources may be fine alone and too many over the command line's.
    let mut errors = Vec::new();
    super::sources::check(&effective, &mut errors);
    super::scenes::check(&effective, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let wanted = effective.model.clone().unwrap_or_default();
    let load_model = (wanted != *current.model_target).then_some(wanted);
    let applied = current.applied;
    let sources = super::sources::changes(applied, &effective);
    let restart_all = effective.snapshots != applied.snapshots;
    Ok(Plan {
        restart_source: sources.runs_change() || restart_all,
        restart_all,
        settings_changed: effective.detection != applied.detection
            || effective.output != applied.output
            || effective.zones != applied.zones
            || effective.lines != applied.lines
            || !sources.max_fps.is_empty()
            || !sources.scene.is_empty(),
        sources,
        load_model,
        config: effective,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> DesiredConfig {
        config::parse(&v).unwrap()
    }

    struct World {
        base: DesiredConfig,
        applied: DesiredConfig,
        target: ModelConfig,
    }

    impl World {
        fn new() -> World {
            let base = cfg(
                json!({"model": {"name": "ssdlite-person"}, "source": {"uri": "rtsp://cam/1"}}),
            );
            World {
                applied: base.clone(),
                target: base.model.clone().unwrap(),
                base,
            }
        }
        fn current(&self) -> Current<'_> {
            Current {
                base: &self.base,
                applied: &self.applied,
                model_target: &self.target,
            }
        }
    }

    #[test]
    fn a_patch_without_model_starts_no_load_even_while_one_is_loading() {
        let mut w = World::new();
        // A load of another model is in flight: the target is that model.
        w.target = ModelConfig {
            name: Some("nanodet-m".into()),
            ..Default::default()
        };
        w.applied.model = Some(w.target.clone());
        let doc = json!({"model": {"name": "nanodet-m"}, "detection": {"minConfidence": 0.7}});
        let p = plan(&doc, w.current()).unwrap();
        assert_eq!(p.load_model, None);
        assert!(p.settings_changed);
        assert!(!p.restart_source);
    }

    #[test]
    fn a_new_model_is_loaded_once() {
        let w = World::new();
        let p = plan(&json!({"model": {"name": "nanodet-m"}}), w.current()).unwrap();
        assert_eq!(p.load_model.unwrap().name.as_deref(), Some("nanodet-m"));
    }

    #[test]
    fn max_fps_alone_changes_settings_not_the_source() {
        let w = World::new();
        let p = plan(&json!({"source": {"maxFps": 5}}), w.current()).unwrap();
        assert!(!p.restart_source);
        assert!(p.settings_changed);
        assert_eq!(
            p.config.source.unwrap().uri.as_deref(),
            Some("rtsp://cam/1"),
            "the command-line camera stays"
        );
    }

    #[test]
    fn a_new_uri_restarts_the_source() {
        let w = World::new();
        let p = plan(&json!({"source": {"uri": "test"}}), w.current()).unwrap();
        assert!(p.restart_source);
        assert_eq!(p.load_model, None);
    }

    #[test]
    fn bad_documents_are_rejected_whole() {
        let w = World::new();
        let errs = plan(
            &json!({"model": {"name": "x"}, "detection": {"minConfidence": 3}}),
            w.current(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        let big = json!({"output": {"name": "x".repeat(MAX_DESIRED_BYTES)}});
        let errs = plan(&big, w.current()).unwrap_err();
        assert!(errs[0].contains("bytes"), "{errs:?}");
    }

    #[test]
    fn zones_apply_live_and_bad_zones_reject_the_patch() {
        let w = World::new();
        let zone = json!({"door": {"polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 1.0]], "classes": ["person"]}});
        let p = plan(&json!({"zones": zone}), w.current()).unwrap();
        assert!(p.settings_changed && !p.restart_source && p.load_model.is_none());
        let errs = plan(
            &json!({"zones": {"door": {"polygon": [[0.1, 0.5], [1.4, 0.5]]}}, "lines": {"l": {"from": [0.5, 0.5], "to": [0.5, 0.5]}}}),
            w.current(),
        )
        .unwrap_err();
        let all = errs.join("; ");
        assert!(all.contains("door") && all.contains("l"), "{all}");
    }

    #[test]
    fn twin_sources_replace_the_command_line_source_one_by_one() {
        let mut w = World::new();
        let two = json!({"sources": {"a": {"uri": "test"}, "b": {"uri": "test"}}});
        let p = plan(&two, w.current()).unwrap();
        assert_eq!(p.sources.start, ["a", "b"]);
        assert_eq!(
            p.sources.stop,
            ["default"],
            "the command line's camera stops"
        );
        assert!(p.restart_source && !p.restart_all && p.config.source.is_none());
        w.applied = p.config;
        let one = json!({"sources": {"a": {"uri": "test", "maxFps": 3}}});
        let p = plan(&one, w.current()).unwrap();
        assert_eq!(p.sources.stop, ["b"]);
        assert!(p.sources.start.is_empty() && p.sources.restart.is_empty());
        assert_eq!(p.sources.max_fps, ["a"]);
        assert!(p.settings_changed);
        let both = json!({"source": {"uri": "test"}, "sources": {"default": {"uri": "test"}}});
        assert!(plan(&both, w.current()).unwrap_err()[0].contains("both define"));
    }

    #[test]
    fn one_sources_zones_apply_live_and_touch_only_that_source() {
        let mut w = World::new();
        let tri = json!({"polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 1.0]]});
        let two = json!({"sources": {"a": {"uri": "test"}, "b": {"uri": "test"}}});
        w.applied = plan(&two, w.current()).unwrap().config;
        let own = json!({"sources": {"a": {"uri": "test", "zones": {"door": tri}}, "b": {"uri": "test"}}});
        let p = plan(&own, w.current()).unwrap();
        assert!(p.settings_changed && !p.restart_source && p.load_model.is_none());
        assert_eq!(p.sources.scene, ["a"]);
        assert!(p.sources.restart.is_empty() && p.sources.start.is_empty());
        let bad = json!({"sources": {"a": {"uri": "test", "zones": {"door": {"polygon": [[0.1, 0.5], [2.0, 0.5], [0.4, 1.0]]}}}}});
        let errs = plan(&bad, w.current()).unwrap_err().join("; ");
        assert!(errs.contains("sources.a.zones.door.polygon[1]"), "{errs}");
    }

    #[test]
    fn patches_must_be_objects() {
        assert!(patched(&json!({}), &json!([1])).is_err());
        let doc = patched(&json!({"a": {"b": 1}}), &json!({"a": {"b": null, "c": 2}})).unwrap();
        assert_eq!(doc, json!({"a": {"c": 2}}));
    }
}
