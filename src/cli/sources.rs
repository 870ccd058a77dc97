//! Several `--source` values: `NAME=URI` names a source; a bare URI is named after its last
//! path part (`samples/vtest.mp4` -> `vtest.mp4`, `rtsp://h/cam1` -> `cam1`), and a name
//! taken twice gets `-N` (its position) appended. A single bare `--source` keeps today's
//! behaviour: its messages carry the name derived from the source (or `--name`).

use std::collections::BTreeMap;

use anyhow::Context;
use edgelens::scene::SceneConfig;

/// Names like the twin's `sources` keys (one rule, `control::check_name`): safe in a label
/// and a path.
pub fn valid_name(v: &str) -> bool {
    let mut errors = Vec::new();
    let max = edgelens::defaults::MAX_SOURCE_NAME;
    edgelens::control::config::check_name(&mut errors, "name", v, max);
    errors.is_empty()
}

/// `(name, uri)` per `--source`, names unique. `NAME=URI` only when NAME is a valid name:
/// `rtsp://h/s?a=b` or `./x=y.mp4` stay whole uris.
pub fn named(values: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let (name, uri) = match v.split_once('=') {
            Some((n, u)) if valid_name(n) && !u.is_empty() => (n.to_string(), u.to_string()),
            _ => (derived(v), v.clone()),
        };
        let name = if out.iter().any(|(n, _)| *n == name) {
            format!("{name}-{}", i + 1)
        } else {
            name
        };
        out.push((name, uri));
    }
    out
}

/// The one `--source`: `NAME=URI` gives its messages NAME; a bare uri stays as it was.
pub fn single(values: &[String]) -> (Option<String>, String) {
    let v = values.first().cloned().unwrap_or_default();
    match v.split_once('=') {
        Some((n, u)) if valid_name(n) && !u.is_empty() => (Some(n.to_string()), u.to_string()),
        _ => (None, v),
    }
}

/// The last path part of a uri when it makes a valid name, else `source`.
fn derived(uri: &str) -> String {
    let tail = uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let tail = tail.split(['?', '#']).next().unwrap_or_default();
    if valid_name(tail) {
        tail.to_string()
    } else {
        "source".to_string()
    }
}

/// The shared `--zones` file, and `(source name, file)` per `--zones NAME=FILE`.
pub type ZoneFiles = (Option<String>, Vec<(String, String)>);

/// `--zones` values: a bare FILE is the zones and lines of every source without its own (at
/// most one); `NAME=FILE` gives source NAME its own, once per name. `NAME=` splits only
/// when NAME is a valid name and the whole value is no existing file (`a=b.json` may be a
/// file name).
pub fn zone_files(values: &[String], is_file: impl Fn(&str) -> bool) -> Result<ZoneFiles, String> {
    let mut top = None;
    let mut own: Vec<(String, String)> = Vec::new();
    for v in values {
        match v.split_once('=') {
            Some((n, f)) if valid_name(n) && !f.is_empty() && !is_file(v) => {
                if own.iter().any(|(o, _)| o == n) {
                    return Err(format!("--zones {n}=... is given twice: one file per source"));
                }
                own.push((n.to_string(), f.to_string()));
            }
            _ if top.is_some() => {
                return Err(format!(
                    "--zones {v}: a second file for every source; give one, or NAME=FILE for one source"
                ))
            }
            _ => top = Some(v.clone()),
        }
    }
    Ok((top, own))
}

/// The source a `--zones NAME=FILE` names: its key among several `--source`s, or for one
/// source `default` (any of its names: `default`, `--name`, `--source NAME=`, or the name
/// derived from its uri).
pub fn zone_target(name: &str, sources: &[String], alias: Option<&str>) -> Result<String, String> {
    let all = named(sources);
    if sources.len() <= 1 {
        let own = all.first().map(|(n, _)| n.as_str());
        if name == edgelens::defaults::DEFAULT_SOURCE || Some(name) == own || Some(name) == alias {
            return Ok(edgelens::defaults::DEFAULT_SOURCE.to_string());
        }
    } else if all.iter().any(|(n, _)| n == name) {
        return Ok(name.to_string());
    }
    let mut known: Vec<String> = all.into_iter().map(|(n, _)| n).collect();
    if sources.len() <= 1 {
        known.extend(alias.map(str::to_string));
        known.push(edgelens::defaults::DEFAULT_SOURCE.to_string());
    }
    Err(format!(
        "--zones {name}=...: no source named '{name}'; the sources are {}",
        known.join(", ")
    ))
}

/// Each `--zones NAME=FILE`: the source it names, its file read and checked like the shared
/// one, and the shared file's knobs (a source's file carries zones and lines only).
pub fn own_scenes(
    sources: &[String],
    alias: Option<&str>,
    shared: &SceneConfig,
    files: Vec<(String, String)>,
) -> anyhow::Result<BTreeMap<String, SceneConfig>> {
    let mut out = BTreeMap::new();
    for (name, file) in files {
        let key = zone_target(&name, sources, alias).map_err(anyhow::Error::msg)?;
        let s = SceneConfig::load(file.as_ref()).with_context(|| format!("--zones {name}="))?;
        let knobs = SceneConfig {
            zones: Default::default(),
            lines: Default::default(),
            ..s.clone()
        };
        anyhow::ensure!(
            knobs == SceneConfig::default(),
            "--zones {name}={file}: a source's own file holds zones and lines only; put the counts, heartbeat and stationary settings in the shared --zones file"
        );
        let own = SceneConfig {
            zones: s.zones,
            lines: s.lines,
            ..shared.clone()
        };
        out.insert(key, own);
    }
    let total = shared.zones.len()
        + shared.lines.len()
        + out
            .values()
            .map(|s| s.zones.len() + s.lines.len())
            .sum::<usize>();
    let max = edgelens::defaults::SCENE_MAX_SHAPES_TOTAL;
    anyhow::ensure!(
        total <= max,
        "--zones: {total} zones and lines in all files together; at most {max}"
    );
    Ok(out)
}

/// Every `--zones`: the shared set (empty without a bare file) and each source's own.
pub fn load_zones(
    values: &[String],
    sources: &[String],
    alias: Option<&str>,
) -> anyhow::Result<(SceneConfig, BTreeMap<String, SceneConfig>)> {
    let (top, own) =
        zone_files(values, |v| std::path::Path::new(v).is_file()).map_err(anyhow::Error::msg)?;
    let scene = match &top {
        Some(p) => SceneConfig::load(p.as_ref()).context("--zones")?,
        None => SceneConfig::default(),
    };
    let own = own_scenes(sources, alias, &scene, own)?;
    Ok((scene, own))
}

/// Local mode's per-source scenes by pipeline key. With one source, its own file simply is
/// the scene (so the live view edits what it runs).
pub fn local_scenes(
    shared: &mut SceneConfig,
    mut own: BTreeMap<String, SceneConfig>,
) -> BTreeMap<String, std::sync::Arc<SceneConfig>> {
    if let Some(one) = own.remove(edgelens::defaults::DEFAULT_SOURCE) {
        *shared = one;
    }
    own.into_iter()
        .map(|(k, s)| (k, std::sync::Arc::new(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<(String, String)> {
        named(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn names_are_given_or_derived_and_unique() {
        let got = n(&[
            "door=rtsp://u:p@10.0.0.2/s?a=b",
            "samples/vtest.mp4",
            "samples/vtest.mp4",
            "rtsp://h/cam1?x=1",
            "test",
            "./x=y.mp4",
        ]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        // "./x=y.mp4" is no NAME=URI ("./x" is no name), and "x=y.mp4" no name either.
        assert_eq!(
            names,
            ["door", "vtest.mp4", "vtest.mp4-3", "cam1", "test", "source"]
        );
        assert_eq!(got[0].1, "rtsp://u:p@10.0.0.2/s?a=b");
        assert_eq!(
            got[3].1, "rtsp://h/cam1?x=1",
            "'=' inside a uri keeps it whole"
        );
        assert_eq!(got[5].1, "./x=y.mp4");
    }

    #[test]
    fn unusable_names_fall_back() {
        assert_eq!(n(&["rtsp://h/"])[0].0, "h");
        assert_eq!(n(&["rtsp://u:p@h:554"])[0].0, "source");
        assert!(!valid_name(".hidden") && !valid_name("") && !valid_name("a b"));
        assert_eq!(n(&["a b=test"])[0].1, "a b=test", "'a b' is no name");
    }

    #[test]
    fn zones_files_are_shared_or_per_source() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = |_: &str| false;
        let (top, own) = zone_files(&v(&["z.json", "cam1=a.json", "cam2=b.json"]), none).unwrap();
        assert_eq!(top.as_deref(), Some("z.json"));
        assert_eq!(
            own,
            [
                ("cam1".into(), "a.json".into()),
                ("cam2".into(), "b.json".into())
            ]
        );
        // A file whose name holds '=' stays a file.
        let (top, own) = zone_files(&v(&["a=b.json"]), |f| f == "a=b.json").unwrap();
        assert_eq!((top.as_deref(), own.len()), (Some("a=b.json"), 0));
        assert!(zone_files(&v(&["a.json", "b.json"]), none)
            .unwrap_err()
            .contains("second file"));
        assert!(zone_files(&v(&["c=a.json", "c=b.json"]), none)
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn zones_name_a_source_or_say_which_exist() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = v(&["door=test", "yard=samples/vtest.mp4"]);
        assert_eq!(zone_target("yard", &two, None).unwrap(), "yard");
        let e = zone_target("gate", &two, None).unwrap_err();
        assert!(
            e.contains("no source named 'gate'") && e.contains("door, yard"),
            "{e}"
        );
        // One source answers to every name it has, as `default`.
        let one = v(&["cam=test"]);
        for n in ["cam", "default", "front"] {
            assert_eq!(
                zone_target(n, &one, Some("front")).unwrap(),
                "default",
                "{n}"
            );
        }
        assert!(zone_target("door", &one, None)
            .unwrap_err()
            .contains("cam, default"));
        assert!(
            zone_target("default", &two, None).is_err(),
            "several: name one"
        );
    }

    #[test]
    fn one_sources_own_file_is_the_scene_several_keep_theirs() {
        let z = |n: &str| SceneConfig {
            zones: [(
                n.to_string(),
                serde_json::from_value(
                    serde_json::json!({"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}),
                )
                .unwrap(),
            )]
            .into(),
            ..SceneConfig::default()
        };
        let mut shared = z("shared");
        let own = local_scenes(&mut shared, [("default".to_string(), z("mine"))].into());
        assert!(own.is_empty() && shared.zones.contains_key("mine"));
        let mut shared = z("shared");
        let own = local_scenes(&mut shared, [("a".to_string(), z("mine"))].into());
        assert!(own["a"].zones.contains_key("mine") && shared.zones.contains_key("shared"));
    }
}
