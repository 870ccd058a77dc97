//! Pure: the sources a config asks for, by name, and what changes between two configs.
//! `source` is the source named `default`; with neither `source` nor `sources`, the
//! default source runs (the bundled sample), as it always did.

use std::collections::BTreeMap;

use super::config::{DesiredConfig, SourceConfig};
use crate::defaults::{DEFAULT_SOURCE, MAX_SOURCES, MAX_SOURCE_NAME};

/// Every source of a config, by name.
pub fn effective(c: &DesiredConfig) -> BTreeMap<String, SourceConfig> {
    let mut all = c.sources.clone().unwrap_or_default();
    match &c.source {
        Some(s) => {
            all.insert(DEFAULT_SOURCE.to_string(), s.clone());
        }
        None if all.is_empty() => {
            all.insert(DEFAULT_SOURCE.to_string(), SourceConfig::default());
        }
        None => {}
    }
    all
}

/// Rules on the set of sources: names, count, and `default` defined once.
pub fn check(c: &DesiredConfig, errors: &mut Vec<String>) {
    let Some(sources) = &c.sources else {
        return;
    };
    for name in sources.keys() {
        super::validate::check_name(errors, "sources key", name, MAX_SOURCE_NAME);
    }
    if c.source.is_some() && sources.contains_key(DEFAULT_SOURCE) {
        errors.push(format!(
            "source and sources.{DEFAULT_SOURCE} both define the source named '{DEFAULT_SOURCE}': keep one"
        ));
    }
    let n = sources.len() + usize::from(c.source.is_some());
    if n > MAX_SOURCES {
        errors.push(format!("{n} sources; at most {MAX_SOURCES}"));
    }
}

/// What happens to running sources when `new` replaces `old`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceChanges {
    pub start: Vec<String>,
    pub stop: Vec<String>,
    /// Uri or params changed: stop, then start again (counters kept, tracks ended).
    pub restart: Vec<String>,
    /// Only maxFps changed: applied live.
    pub max_fps: Vec<String>,
    /// Their zones or lines changed: applied live, their tracks kept.
    pub scene: Vec<String>,
}

impl SourceChanges {
    /// True when a source starts, stops or restarts.
    pub fn runs_change(&self) -> bool {
        !(self.start.is_empty() && self.stop.is_empty() && self.restart.is_empty())
    }
}

pub fn changes(old_cfg: &DesiredConfig, new_cfg: &DesiredConfig) -> SourceChanges {
    let (old, new) = (effective(old_cfg), effective(new_cfg));
    let mut c = SourceChanges::default();
    for (name, n) in &new {
        match old.get(name) {
            None => c.start.push(name.clone()),
            Some(o) if (&o.uri, &o.params) != (&n.uri, &n.params) => c.restart.push(name.clone()),
            Some(o) if o.max_fps != n.max_fps => c.max_fps.push(name.clone()),
            Some(_) => {}
        }
    }
    c.scene = super::scenes::changed(old_cfg, new_cfg);
    c.stop = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    c
}

/// Every source of the config, resolved; a spec's `name` is what its messages carry: the
/// key for named sources, and for `default` `--name` or the name derived from its uri.
pub(super) fn resolve(
    c: &DesiredConfig,
    opts: &super::ModuleOptions,
) -> Result<BTreeMap<String, crate::ingest::SourceSpec>, super::ControlError> {
    let mut out = BTreeMap::new();
    for (name, s) in effective(c) {
        let uri = s.uri.unwrap_or_else(|| crate::defaults::SOURCE.to_string());
        let params = s.params.unwrap_or_default();
        let mut spec = crate::ingest::resolve(&uri, &params, opts.presets_dir.as_deref())
            .map_err(|e| super::ControlError::Other(format!("source '{name}': {e}")))?;
        if name != DEFAULT_SOURCE {
            spec.name = name.clone();
        } else if let Some(n) = &opts.source_name {
            spec.name = n.clone();
        }
        out.insert(name, spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> DesiredConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn source_is_the_default_one_and_nothing_means_the_sample() {
        let names = |v| effective(&cfg(v)).into_keys().collect::<Vec<_>>();
        assert_eq!(names(json!({})), ["default"]);
        assert_eq!(names(json!({"source": {"uri": "test"}})), ["default"]);
        assert_eq!(
            names(json!({"source": {"uri": "test"}, "sources": {"a": {"uri": "test"}}})),
            ["a", "default"]
        );
        assert_eq!(names(json!({"sources": {"b": {}, "a": {}}})), ["a", "b"]);
    }

    #[test]
    fn only_the_changed_source_is_touched() {
        let old = cfg(
            json!({"sources": {"a": {"uri": "test"}, "b": {"uri": "x.mp4"}, "c": {"uri": "test"}}}),
        );
        let new = cfg(
            json!({"sources": {"a": {"uri": "test", "maxFps": 2}, "b": {"uri": "y.mp4"}, "d": {"uri": "test"}}}),
        );
        let c = changes(&old, &new);
        assert_eq!(c.start, ["d"]);
        assert_eq!(c.stop, ["c"]);
        assert_eq!(c.restart, ["b"]);
        assert_eq!(c.max_fps, ["a"]);
        assert!(c.runs_change());
        let same = changes(&new, &new);
        assert_eq!(same, SourceChanges::default());
        assert!(!same.runs_change());
    }

    #[test]
    fn bad_sets_of_sources_are_named() {
        let mut e = Vec::new();
        check(
            &cfg(json!({"source": {}, "sources": {"default": {}, "bad name": {}}})),
            &mut e,
        );
        let all = e.join("; ");
        assert!(
            all.contains("bad name") && all.contains("both define"),
            "{all}"
        );
        let many: serde_json::Map<String, serde_json::Value> =
            (0..17).map(|i| (format!("s{i}"), json!({}))).collect();
        let mut e = Vec::new();
        check(&cfg(json!({"sources": many})), &mut e);
        assert!(e.iter().any(|m| m.contains("at most 16")), "{e:?}");
    }
}
