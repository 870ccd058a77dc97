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
    let ok = parse(&json!({"$version": 3, "model": {"name": "ssdlite-person", "$metadata": {}}}))
        .unwrap();
    assert_eq!(ok.model.unwrap().name.as_deref(), Some("ssdlite-person"));
    let errs =
        parse(&json!({"model": {"name": "x", "threads": 0}, "detection": {"minConfidence": 2.0}}))
            .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
}

fn cli_base() -> DesiredConfig {
    parse(&json!({
        "model": {"name": "ssdlite-person", "threads": 2},
        "source": {"uri": "rtsp://cam/1", "params": {"latency_ms": "200"}},
        "detection": {"minConfidence": 0.6, "classes": ["person"]}
    }))
    .unwrap()
}

#[test]
fn a_partial_source_patch_keeps_the_command_line_camera() {
    let twin = parse(&json!({"source": {"maxFps": 5}})).unwrap();
    let eff = overlay(&cli_base(), &twin);
    let s = eff.source.unwrap();
    assert_eq!(s.uri.as_deref(), Some("rtsp://cam/1"));
    assert_eq!(s.max_fps, Some(5.0));
    assert_eq!(s.params.unwrap()["latency_ms"], "200");
}

#[test]
fn detection_fields_merge_one_by_one() {
    let twin = parse(&json!({"detection": {"minConfidence": 0.3}})).unwrap();
    let d = overlay(&cli_base(), &twin).detection.unwrap();
    assert_eq!(d.min_confidence, Some(0.3));
    assert_eq!(d.classes, Some(vec!["person".to_string()]));
}

#[test]
fn a_new_source_uri_drops_the_old_params_and_a_new_model_the_old_sha() {
    let twin = parse(&json!({"source": {"uri": "test"}, "model": {"uri": "file:///m"}})).unwrap();
    let eff = overlay(&cli_base(), &twin);
    assert_eq!(eff.source.unwrap().params, None);
    let m = eff.model.unwrap();
    assert_eq!(m.uri.as_deref(), Some("file:///m"));
    // Threads are a property of the box, not the model: they carry over.
    assert_eq!(m.threads, Some(2));
}

#[test]
fn hostile_values_are_rejected_with_short_reasons() {
    let long = "x".repeat(5000);
    let errs = parse(&json!({"model": {"name": long}, "output": {"name": "../etc"}})).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().all(|e| e.len() < 200), "{errs:?}");
    let errs = parse(&json!({"model": {"name": ".."}})).unwrap_err();
    assert!(errs[0].contains("model.name"), "{errs:?}");
    let errs = parse(&json!({"model": {"uri": "ftp://u:secret@h/x?sig=SECRET"}})).unwrap_err();
    assert!(
        !errs[0].contains("SECRET") && !errs[0].contains("secret"),
        "{errs:?}"
    );
}

/// A long URL cut to 64 characters before redaction lost its '@', and its password showed.
#[test]
fn a_url_where_a_name_belongs_is_redacted_before_it_is_cut() {
    let key = format!("rtsp://admin:{}@cam.local/s", "S3CRET".repeat(12));
    let errs =
        parse(&json!({"sources": {key: {"maxFps": 0}}, "output": {"name": "rtsp://u:S3CRET@h/s"}}))
            .unwrap_err()
            .join("; ");
    assert!(!errs.contains("S3CRET"), "{errs}");
    assert!(
        errs.contains("sources.rtsp://***@cam.local/s.maxFps"),
        "{errs}"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let mut s = String::new();
    for _ in 0..200 {
        s.push_str("{\"a\":");
    }
    s.push('1');
    for _ in 0..200 {
        s.push('}');
    }
    // serde_json's recursion limit turns this into an error before we see a Value.
    assert!(serde_json::from_str::<serde_json::Value>(&s).is_err());
}

/// The committed schema is generated from these types: regenerate with
/// `EDGELENS_WRITE_SCHEMA=1 cargo test --release --lib schema`.
#[test]
fn committed_schema_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/desired-properties.schema.json");
    let generated = serde_json::to_string_pretty(&schema()).unwrap() + "\n";
    if std::env::var_os("EDGELENS_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "docs/desired-properties.schema.json is out of date: run EDGELENS_WRITE_SCHEMA=1 cargo test --release --lib schema"
    );
}

#[test]
fn max_fps_has_a_floor_that_does_not_round_to_no_limit() {
    for bad in [json!(1e-300), json!(0.001), json!(0), json!(-1), json!(241)] {
        let errs = parse(&json!({"source": {"maxFps": bad}})).unwrap_err();
        assert!(
            errs[0].contains("maxFps must be between 0.01 and 240"),
            "{bad}: {errs:?}"
        );
    }
    for ok in [json!(0.01), json!(2.5), json!(240)] {
        assert!(parse(&json!({"sources": {"a": {"uri": "test", "maxFps": ok}}})).is_ok());
    }
}
