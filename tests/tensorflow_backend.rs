//! The TensorFlow backend (runtime-linked C API) on the original frozen graph and a
//! Keras 3 SavedModel, against ONNX Runtime on the converted ONNX.
#![cfg(feature = "tensorflow")]

mod common;

use common::{
    assert_clean_failure, assert_partners, bin, data, detect, model, run, scratch_model, Tolerance,
};

#[test]
fn tensorflow_matches_onnx_runtime_on_real_images() {
    for variant in ["ssdlite-person-tf", "ssdlite-person-savedmodel"] {
        for image in ["astronaut.png", "messi5.jpg", "vtest-frame.png"] {
            let tf = detect(variant, "tensorflow", image);
            let ort = detect("ssdlite-person", "ort", image);
            assert!(!tf.is_empty(), "{variant} found nothing on {image}");
            assert_eq!(
                tf.len(),
                ort.len(),
                "{variant} on {image}: {tf:?} vs {ort:?}"
            );
            let tol = Tolerance {
                min_iou: 0.99,
                max_score_diff: 1e-3,
            };
            assert_partners(&tf, &ort, |_| true, tol, &format!("{variant} on {image}"));
        }
    }
}

#[test]
fn savedmodel_without_the_requested_signature() {
    let dir = common::root().join("models/convert/fixtures/savedmodel-other-signature");
    let out = run(bin()
        .args(["detect", "--backend", "tensorflow", "--model"])
        .arg(&dir)
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["no signature 'serving_default'", "detect"]);
}

#[test]
fn frozen_graph_manifest_naming_a_missing_tensor() {
    let dir = scratch_model("ssdlite-person-tf", |t| {
        t["decoder"]["scores"] = toml::Value::String("detection_scorez:0".into());
    });
    let out = run(bin()
        .args(["detect", "--backend", "tensorflow", "--model"])
        .arg(dir.path())
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["detection_scorez:0"]);
}

#[test]
fn missing_tensorflow_library_is_a_clear_error_and_other_backends_still_work() {
    let out = run(bin()
        .env("TENSORFLOW_DIR", "/nonexistent")
        .env_remove("LD_LIBRARY_PATH")
        .args(["detect", "--backend", "tensorflow", "--model"])
        .arg(model("ssdlite-person-tf"))
        .arg(data("astronaut.png")));
    assert_clean_failure(
        &out,
        &[
            "TensorFlow backend unavailable",
            "make deps",
            "TENSORFLOW_DIR",
        ],
    );
    let out = run(bin()
        .env("TENSORFLOW_DIR", "/nonexistent")
        .args(["detect", "--backend", "ort", "--model"])
        .arg(model("ssdlite-person"))
        .arg(data("astronaut.png")));
    assert!(out.status.success());
}

#[test]
fn signature_is_a_tensorflow_option_and_selects_the_savedmodel_signature() {
    let dir = scratch_model("convert/fixtures/savedmodel-other-signature", |t| {
        t["backend"]["tensorflow"]["signature"] = toml::Value::String("detect".into());
    });
    // The fixture's one box scores mean(image)/255: keep it whatever the image.
    let msgs = common::json_lines(
        bin()
            .args(["detect", "--min-confidence", "0", "--model"])
            .arg(dir.path())
            .arg(data("astronaut.png")),
    );
    let boxes = &msgs[0]["inferences"];
    assert_eq!(boxes.as_array().map(Vec::len), Some(1), "{msgs:?}");
    let b = &boxes[0]["entity"]["box"];
    for (k, want) in [("l", 0.25), ("t", 0.25), ("w", 0.5), ("h", 0.5)] {
        let v = b[k].as_f64().expect("box field");
        assert!((v - want).abs() < 1e-3, "{k} = {v}");
    }
}

#[test]
fn unknown_key_in_the_tensorflow_table() {
    let dir = scratch_model("convert/fixtures/savedmodel-other-signature", |t| {
        t["backend"]["tensorflow"]
            .as_table_mut()
            .expect("table")
            .insert("signatur".into(), toml::Value::String("detect".into()));
    });
    let out = run(bin()
        .args(["detect", "--backend", "tensorflow", "--model"])
        .arg(dir.path())
        .arg(data("astronaut.png")));
    assert_clean_failure(&out, &["[backend.tensorflow]", "unknown field `signatur`"]);
}
