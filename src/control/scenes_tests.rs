use super::*;
use serde_json::json;

fn cfg(v: serde_json::Value) -> DesiredConfig {
    serde_json::from_value(v).unwrap()
}

fn tri(x: f32) -> serde_json::Value {
    json!({"polygon": [[x, 0.1], [x + 0.1, 0.1], [x + 0.1, 0.5]]})
}

#[test]
fn a_source_runs_its_own_set_else_the_top_level_one() {
    let c = cfg(json!({
        "zones": {"top": tri(0.1)},
        "lines": {"gate": {"from": [0.5, 0.0], "to": [0.5, 1.0]}},
        "output": {"heartbeatSecs": 7},
        "sources": {
            "a": {"uri": "test", "zones": {"door": tri(0.2)}},
            "b": {"uri": "test"},
            "c": {"uri": "test", "zones": {}}
        }
    }));
    let a = for_source(&c, "a");
    assert_eq!(a.zones.keys().collect::<Vec<_>>(), ["door"]);
    assert!(
        a.lines.is_empty(),
        "own set: the top-level line is not merged in"
    );
    assert_eq!(a.heartbeat_secs, 7.0, "the knobs are shared");
    let b = for_source(&c, "b");
    assert_eq!(b.zones.keys().collect::<Vec<_>>(), ["top"]);
    assert_eq!(b.lines.keys().collect::<Vec<_>>(), ["gate"]);
    let cc = for_source(&c, "c");
    assert!(cc.zones.is_empty() && cc.lines.is_empty(), "{{}} opts out");
    assert_eq!(own(&c).into_keys().collect::<Vec<_>>(), ["a", "c"]);
    // `source` is the one named `default`.
    let d = cfg(json!({"zones": {"top": tri(0.1)}, "source": {"zones": {"mine": tri(0.3)}}}));
    assert!(for_source(&d, "default").zones.contains_key("mine"));
}

#[test]
fn single_source_twins_keep_working_unchanged() {
    let c = cfg(json!({"zones": {"top": tri(0.1)}, "source": {"uri": "test"}}));
    assert!(own(&c).is_empty());
    assert_eq!(for_source(&c, "default"), scene(&c));
}

#[test]
fn a_bad_zone_names_its_source_and_zone() {
    let c = cfg(json!({"sources": {
        "cam1": {"zones": {"door": {"polygon": [[0.1, 0.1], [1.5, 0.1], [0.2, 0.2]]}}},
        "cam2": {"lines": {"l": {"from": [0.5, 0.5], "to": [0.5, 0.5]}}, "zones": {"bad name": tri(0.1)}}
    }}));
    let mut e = Vec::new();
    check(&c, &mut e);
    let all = e.join("; ");
    assert!(all.contains("sources.cam1.zones.door.polygon[1]"), "{all}");
    assert!(
        all.contains("sources.cam2.lines.l has zero length"),
        "{all}"
    );
    assert!(all.contains("sources.cam2.zones.bad name"), "{all}");
    let s = cfg(json!({"source": {"zones": {"x": {"polygon": [[0.1, 0.1]]}}}}));
    let mut e = Vec::new();
    check(&s, &mut e);
    assert!(
        e[0].starts_with("source.zones.x.polygon has 1 points"),
        "{e:?}"
    );
}

#[test]
fn limits_apply_per_source_and_in_all() {
    let many = |n: usize| -> serde_json::Map<String, serde_json::Value> {
        (0..n).map(|i| (format!("z{i}"), tri(0.1))).collect()
    };
    // 32 per source is fine, and the top level has its own 32.
    let ok = cfg(json!({"zones": many(32), "sources": {"a": {"zones": many(32)}}}));
    let mut e = Vec::new();
    check(&ok, &mut e);
    assert!(e.is_empty(), "{e:?}");
    let mut e = Vec::new();
    check(&cfg(json!({"sources": {"a": {"zones": many(33)}}})), &mut e);
    assert_eq!(e, ["sources.a: 33 zones and lines in all; at most 32"]);
    // 9 sources x 30 = 270 > 256 in all, though each set is within its own limit.
    let sources: serde_json::Map<String, serde_json::Value> = (0..9)
        .map(|i| (format!("s{i}"), json!({"zones": many(30)})))
        .collect();
    let mut e = Vec::new();
    check(&cfg(json!({ "sources": sources })), &mut e);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("270 zones and lines across"), "{e:?}");
}

#[test]
fn only_sources_whose_shapes_change_are_named() {
    let old = cfg(json!({"zones": {"top": tri(0.1)}, "sources": {
        "a": {"uri": "test", "zones": {"door": tri(0.2)}},
        "b": {"uri": "test"},
        "c": {"uri": "test", "zones": {"x": tri(0.2)}}
    }}));
    let new = cfg(json!({"zones": {"top": tri(0.1)}, "sources": {
        "a": {"uri": "test", "zones": {"door": tri(0.3)}},
        "b": {"uri": "test"},
        "c": {"uri": "test", "zones": {"x": tri(0.2)}},
        "d": {"uri": "test", "zones": {"y": tri(0.2)}}
    }}));
    assert_eq!(changed(&old, &new), ["a"]);
    // A new top level changes every source that runs it, and only those.
    let mut top = new.clone();
    top.zones = None;
    assert_eq!(changed(&new, &top), ["b"]);
    assert!(changed(&new, &new).is_empty());
}
