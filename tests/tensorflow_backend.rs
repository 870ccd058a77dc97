//! The TensorFlow backend (runtime-linked C API) on the original frozen graph and a
//! Keras 3 SavedModel, against ONNX Runtime on the converted ONNX.
#![cfg(feature = "tensorflow")]

mod common;

use common::{assert_clean_failure, bin, corners, data, detect, model, run, scratch_model};
use edgelens::engine::nms::iou;

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
            for d in &tf {
                let best = ort
                    .iter()
                    .filter(|e| e.label == d.label)
                    .map(|e| {
                        (
                            iou(&corners(d), &corners(e)),
                            (d.confidence - e.confidence).abs(),
                        )
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .expect("a partner");
                assert!(best.0 > 0.99, "{variant} on {image}: IoU {}", best.0);
                assert!(best.1 < 1e-3, "{variant} on {image}: score diff {}", best.1);
            }
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
