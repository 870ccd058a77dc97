//! Pure: which zones and lines each source runs, and the rules on them across sources.
//! Zone coordinates are normalized to one camera's frame, so a source may carry its own
//! `zones`/`lines`. A source that sets either runs its own set only (the top-level set is
//! not merged in: mixing two cameras' coordinates is the mistake this exists to avoid); a
//! source that sets neither runs the top-level set. The event knobs (`output.*Secs`) are
//! shared.

use std::collections::BTreeMap;

use super::config::{scene, truncate, DesiredConfig, SourceConfig};
use super::sources::effective;
use crate::defaults::SCENE_MAX_SHAPES_TOTAL;
use crate::scene::config::validate_shapes;
use crate::scene::SceneConfig;

/// One source's own scene: its zones and lines (an unset one is empty) with the shared knobs.
fn own_scene(top: &SceneConfig, s: &SourceConfig) -> SceneConfig {
    SceneConfig {
        zones: s.zones.clone().unwrap_or_default(),
        lines: s.lines.clone().unwrap_or_default(),
        ..top.clone()
    }
}

/// The scene of every source that has its own zones or lines, by source name (`default`
/// for `source`); every other source runs `config::scene(c)`.
pub fn own(c: &DesiredConfig) -> BTreeMap<String, SceneConfig> {
    let top = scene(c);
    effective(c)
        .into_iter()
        .filter(|(_, s)| s.has_own_scene())
        .map(|(n, s)| {
            let sc = own_scene(&top, &s);
            (n, sc)
        })
        .collect()
}

/// The scene a named source runs.
pub fn for_source(c: &DesiredConfig, name: &str) -> SceneConfig {
    let top = scene(c);
    match effective(c).get(name) {
        Some(s) if s.has_own_scene() => own_scene(&top, s),
        _ => top,
    }
}

/// Each source's own zones and lines under the top-level rules, each problem naming the
/// source and the zone (`sources.cam1.zones.door.polygon[2] ...`), and the bound on all
/// sets together.
pub fn check(c: &DesiredConfig, errors: &mut Vec<String>) {
    let mut own_sets: Vec<(String, &SourceConfig)> = Vec::new();
    if let Some(s) = &c.source {
        own_sets.push(("source.".to_string(), s));
    }
    for (name, s) in c.sources.iter().flatten() {
        own_sets.push((format!("sources.{}.", truncate(name)), s));
    }
    let mut total =
        c.zones.as_ref().map_or(0, |z| z.len()) + c.lines.as_ref().map_or(0, |l| l.len());
    for (prefix, s) in own_sets {
        if !s.has_own_scene() {
            continue;
        }
        let (zones, lines) = (
            s.zones.clone().unwrap_or_default(),
            s.lines.clone().unwrap_or_default(),
        );
        total += zones.len() + lines.len();
        errors.extend(validate_shapes(&zones, &lines, &prefix));
    }
    if total > SCENE_MAX_SHAPES_TOTAL {
        errors.push(format!(
            "{total} zones and lines across the top level and every source's own; at most {SCENE_MAX_SHAPES_TOTAL} in all"
        ));
    }
}

/// Sources in both configs whose zones or lines differ: they change live (their tracks
/// stay); every other source's scene is untouched.
pub fn changed(old: &DesiredConfig, new: &DesiredConfig) -> Vec<String> {
    let before = effective(old);
    effective(new)
        .into_keys()
        .filter(|n| before.contains_key(n))
        .filter(|n| {
            let (a, b) = (for_source(old, n), for_source(new, n));
            (a.zones, a.lines) != (b.zones, b.lines)
        })
        .collect()
}

#[cfg(test)]
#[path = "scenes_tests.rs"]
mod tests;
