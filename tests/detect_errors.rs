//! Bad input must give one clear error line and a non-zero exit, never a panic.

mod common;

use common::{assert_clean_failure, bin, data, model, run, scratch_model};

#[test]
fn missing_model_folder() {
    let out = run(bin()
        .args(["detect", "--model", "models/does-not-exist"])
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["does-not-exist", "does not exist"]);
}

#[test]
fn unknown_decoder_kind() {
    let dir = scratch_model("ssdlite-person", |t| {
        t["decoder"]["kind"] = toml::Value::String("retinanet".into());
    });
    let out = run(bin()
        .arg("detect")
        .arg("--model")
        .arg(dir.path())
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["unknown decoder kind 'retinanet'", "ssd-anchors"]);
}

#[test]
fn input_size_that_does_not_match_the_graph() {
    for backend in ["ort", "tract"] {
        let dir = scratch_model("ssdlite-person", |t| {
            t["input"]["width"] = toml::Value::Integer(320);
        });
        let out = run(bin()
            .args(["detect", "--backend", backend, "--model"])
            .arg(dir.path())
            .arg(data("astronaut.png")));
        if backend == "tract" && !cfg!(feature = "tract") {
            continue;
        }
        assert_clean_failure(&out, &["input size mismatch", "320"]);
    }
}

#[test]
fn truncated_onnx_file() {
    let bytes = std::fs::read(model("ssdlite-person").join("ssdlite-person.onnx")).expect("model");
    for (keep_sha, expect) in [(true, "sha256 mismatch"), (false, "not a valid ONNX model")] {
        for backend in ["ort", "tract"] {
            if backend == "tract" && !cfg!(feature = "tract") {
                continue;
            }
            let dir = scratch_model("ssdlite-person", |t| {
                if !keep_sha {
                    t.remove("sha256");
                }
            });
            let onnx = dir.path().join("ssdlite-person.onnx");
            std::fs::remove_file(&onnx).expect("unlink");
            std::fs::write(&onnx, &bytes[..bytes.len() / 2]).expect("write");
            let out = run(bin()
                .args(["detect", "--backend", backend, "--model"])
                .arg(dir.path())
                .arg(data("astronaut.png")));
            assert_clean_failure(&out, &[expect]);
        }
    }
}

#[test]
fn missing_image() {
    let out = run(bin()
        .args(["detect", "--model"])
        .arg(model("ssdlite-person"))
        .arg("/nonexistent/cat.png"));
    assert_clean_failure(&out, &["/nonexistent/cat.png", "not found"]);
}

#[test]
fn non_image_file() {
    let out = run(bin()
        .args(["detect", "--model"])
        .arg(model("ssdlite-person"))
        .arg(data("not-an-image.jpg")));
    assert_clean_failure(&out, &["not-an-image.jpg", "not a readable image"]);
}

#[test]
fn missing_onnx_runtime_library() {
    let out = run(bin()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["detect", "--backend", "ort", "--model"])
        .arg(model("ssdlite-person"))
        .arg(data("astronaut.png")));
    assert_clean_failure(
        &out,
        &[
            "ONNX Runtime library not found",
            "ORT_DYLIB_PATH",
            "make deps",
        ],
    );
}

#[test]
fn unknown_backend() {
    let out = run(bin()
        .args(["detect", "--backend", "openvino", "--model"])
        .arg(model("ssdlite-person"))
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["unknown backend 'openvino'"]);
}

#[test]
fn detect_prints_one_schema_message_per_image() {
    let msgs = common::json_lines(
        bin()
            .args(["detect", "--model"])
            .arg(model("ssdlite-person"))
            .arg(data("astronaut.png"))
            .arg(data("messi5.jpg")),
    );
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        assert_eq!(m["model"]["name"], "ssdlite-person");
        let inf = &m["inferences"][0];
        assert_eq!(inf["type"], "entity");
        assert_eq!(inf["subtype"], "objectDetection");
        assert_eq!(inf["entity"]["tag"]["value"], "person");
        for k in ["l", "t", "w", "h"] {
            let v = inf["entity"]["box"][k].as_f64().expect("box field");
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
    }
}

#[test]
fn annotate_writes_pngs_with_boxes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(bin()
        .args(["detect", "--model"])
        .arg(model("ssdlite-person"))
        .arg("--annotate")
        .arg(dir.path())
        .arg(data("astronaut.png")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let annotated = image::open(dir.path().join("astronaut.png"))
        .expect("annotated png")
        .to_rgb8();
    let original = image::open(data("astronaut.png"))
        .expect("original")
        .to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    let changed = annotated
        .pixels()
        .zip(original.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 500,
        "only {changed} pixels changed: no box drawn?"
    );
}

#[test]
fn decoder_thresholds_out_of_range_are_refused_at_load() {
    for (key, value, expect) in [
        (
            "min_confidence",
            toml::Value::Float(1.5),
            "min_confidence must be within 0..1, got 1.5",
        ),
        (
            "nms_iou",
            toml::Value::Float(f64::NAN),
            "nms_iou must be within 0..1, got NaN",
        ),
        (
            "max_detections",
            toml::Value::Integer(0),
            "max_detections must be within 1..10000, got 0",
        ),
    ] {
        let dir = scratch_model("ssdlite-person", |t| {
            t["decoder"]
                .as_table_mut()
                .expect("[decoder]")
                .insert(key.into(), value.clone());
        });
        let out = run(bin()
            .args(["detect", "--model"])
            .arg(dir.path())
            .arg(data("astronaut.png")));
        assert_clean_failure(&out, &["model.toml", "[decoder]", expect]);
    }
}

#[test]
fn min_confidence_flag_out_of_range_or_nan() {
    for (value, expect) in [("1.5", "got 1.5"), ("NaN", "got NaN"), ("-0.1", "got -0.1")] {
        let out = run(bin()
            .arg("detect")
            .arg(format!("--min-confidence={value}"))
            .arg("--model")
            .arg(model("ssdlite-person"))
            .arg(data("astronaut.png")));
        assert_clean_failure(&out, &["--min-confidence must be within 0..1", expect]);
    }
}

#[test]
fn backend_table_naming_no_backend() {
    let dir = scratch_model("ssdlite-person", |t| {
        let mut opts = toml::Table::new();
        opts.insert("device".into(), toml::Value::String("gpu".into()));
        let mut backend = toml::Table::new();
        backend.insert("openvino".into(), toml::Value::Table(opts));
        t.insert("backend".into(), toml::Value::Table(backend));
    });
    let out = run(bin()
        .args(["detect", "--model"])
        .arg(dir.path())
        .arg(data("astronaut.png")));
    assert_clean_failure(
        &out,
        &["[backend.openvino]", "no backend is called 'openvino'"],
    );
}
