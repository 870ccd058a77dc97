//! Unit tests for `config.rs`.

use super::*;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<SceneConfig, Vec<String>> {
    SceneConfig::from_json(&v)
}

#[test]
fn defaults_and_camel_case() {
    let c = parse(json!({
        "zones": {"door": {"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "loiterSecs": 5}},
        "lines": {"gate": {"from": [0.0, 0.5], "to": [1.0, 0.5], "classes": ["person"]}},
        "heartbeatSecs": 30
    }))
    .unwrap();
    let z = &c.zones["door"];
    assert_eq!(z.min_frames, defaults::ZONE_MIN_FRAMES);
    assert_eq!(z.loiter_secs, 5.0);
    assert!(z.classes.is_empty());
    assert_eq!(c.lines["gate"].classes, vec!["person"]);
    assert_eq!(c.heartbeat_secs, 30.0);
    assert_eq!(c.counts_every_secs, defaults::COUNTS_EVERY_SECS);
    assert_eq!(c.stationary_secs, defaults::STATIONARY_SECS);
    assert_eq!(parse(json!({})).unwrap(), SceneConfig::default());
}

#[test]
fn unknown_fields_are_rejected() {
    let errs = parse(json!({"zones": {"a": {"polygon": [], "inertia": 3}}})).unwrap_err();
    assert!(errs[0].contains("inertia"), "{errs:?}");
    assert!(parse(json!({"areas": {}})).is_err());
}

#[test]
fn every_problem_names_its_field() {
    let errs = parse(json!({
        "zones": {
            "two-points": {"polygon": [[0.1, 0.1], [0.5, 0.1]]},
            "far": {"polygon": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]},
            "bowtie": {"polygon": [[0.2, 0.2], [0.6, 0.6], [0.6, 0.2], [0.2, 0.6]]},
            "flat": {"polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]},
            "dup": {"polygon": [[0.1, 0.1], [0.1, 0.1], [0.3, 0.3], [0.1, 0.3]]},
            "bad name!": {"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "classes": [""], "minFrames": 0},
            "neg": {"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "loiterSecs": -1}
        },
        "lines": {"dot": {"from": [0.5, 0.5], "to": [0.5, 0.5]}, "out": {"from": [-0.1, 0.5], "to": [0.5, 0.5]}},
        "countsEverySecs": 0
    }))
    .unwrap_err();
    let has = |s: &str| assert!(errs.iter().any(|e| e.contains(s)), "no '{s}' in {errs:?}");
    has("zones.two-points.polygon has 2 points");
    has("zones.far.polygon[1] [1.5, 0.1] must be finite and within 0..1");
    has("zones.bowtie.polygon crosses itself");
    has("zones.flat.polygon has zero area");
    has("zones.dup.polygon[1] repeats");
    has("zones.bad name!: name may only hold");
    has("zones.bad name!.classes entries");
    has("zones.bad name!.minFrames must be 1..1000, got 0");
    has("zones.neg.loiterSecs must be within");
    has("lines.dot has zero length");
    has("lines.out.from [-0.1, 0.5]");
    has("countsEverySecs must be within 1..86400");
    assert_eq!(errs.len(), 12, "{errs:?}");
}

#[test]
fn limits_on_count_points_and_names() {
    let tri = json!({"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]});
    let zones: serde_json::Map<_, _> = (0..33).map(|i| (format!("z{i}"), tri.clone())).collect();
    let errs = parse(json!({ "zones": zones })).unwrap_err();
    assert_eq!(
        errs,
        vec!["33 zones and lines in all; at most 32".to_string()]
    );
    // 65 points on a circle: simple, but too many.
    let circle: Vec<_> = (0..65)
        .map(|i| {
            let a = i as f32 / 65.0 * std::f32::consts::TAU;
            [0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin()]
        })
        .collect();
    let errs = parse(json!({"zones": {"round": {"polygon": circle}}})).unwrap_err();
    assert!(
        errs[0].contains("has 65 points; it needs 3..64"),
        "{errs:?}"
    );
    let ok: Vec<_> = circle[..64].to_vec();
    assert!(parse(json!({"zones": {"round": {"polygon": ok}}})).is_ok());
    let long = "n".repeat(65);
    let errs = parse(json!({"zones": {long: tri}})).unwrap_err();
    assert!(
        errs[0].contains("must be 1..64 characters (got 65)"),
        "{errs:?}"
    );
}

#[test]
fn non_finite_seconds_rejected() {
    let c = SceneConfig {
        heartbeat_secs: f32::NAN,
        ..SceneConfig::default()
    };
    assert!(c.validate()[0].starts_with("heartbeatSecs"));
}

/// A hostile batching window: negative, past the 60 s cap, not a number; 0 and 60 are fine.
#[test]
fn events_batch_window_is_bounded() {
    for bad in [-1.0, 60.5, 1e9, f32::NAN, f32::INFINITY] {
        let c = SceneConfig {
            events_batch_secs: bad,
            ..SceneConfig::default()
        };
        let errs = c.validate();
        assert!(
            errs.len() == 1 && errs[0].starts_with("eventsBatchSecs must be within 0..60"),
            "{bad}: {errs:?}"
        );
    }
    for ok in [0.0, 2.0, 60.0] {
        let c = SceneConfig {
            events_batch_secs: ok,
            ..SceneConfig::default()
        };
        assert!(c.validate().is_empty(), "{ok}");
    }
    let doc = serde_json::json!({"eventsBatchSecs": "2"});
    assert!(
        SceneConfig::from_json(&doc).is_err(),
        "a string is not seconds"
    );
}

#[test]
fn load_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("zones.json");
    std::fs::write(
        &good,
        r#"{"zones":{"lot":{"polygon":[[0,0.5],[1,0.5],[1,1],[0,1]],"classes":["car"]}}}"#,
    )
    .unwrap();
    assert_eq!(
        SceneConfig::load(&good).unwrap().zones["lot"].classes,
        vec!["car"]
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"lines":{"l":{"from":[0,0],"to":[0,0]}}}"#).unwrap();
    let err = SceneConfig::load(&bad).unwrap_err().to_string();
    assert!(err.contains("lines.l has zero length"), "{err}");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{zones").unwrap();
    assert!(matches!(
        SceneConfig::load(&garbage),
        Err(SceneConfigError::Parse { .. })
    ));
    let huge = dir.path().join("huge.json");
    std::fs::write(
        &huge,
        vec![b' '; defaults::SCENE_FILE_MAX_BYTES as usize + 1],
    )
    .unwrap();
    assert!(matches!(
        SceneConfig::load(&huge),
        Err(SceneConfigError::TooLarge { .. })
    ));
    let missing = SceneConfig::load(&dir.path().join("none.json")).unwrap_err();
    assert!(missing.to_string().contains("cannot read zones file"));
}
