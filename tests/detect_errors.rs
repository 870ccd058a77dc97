//! Bad input must give one clear error line and a non-zero exit, never a panic.

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use common::hostile::{assert_child_passes, with_memory_cap};
use common::{assert_clean_failure, bin, data, model, run, scratch_model};
use edgelens::engine::backends::Outputs;
use edgelens::engine::decoders;
use edgelens::model::Manifest;
use ndarray::ArrayD;

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

/// A 65535 x 65535 input made ssd-anchors build 200 GB of anchors at load, before the
/// graph's input shape was looked at: the process aborted ("memory allocation failed").
#[test]
fn a_huge_manifest_input_is_refused_by_field_not_an_abort() {
    let dir = scratch_model("ssdlite-person", |t| {
        t["input"]["width"] = toml::Value::Integer(65535);
        t["input"]["height"] = toml::Value::Integer(65535);
    });
    let args = [
        OsString::from("detect"),
        OsString::from("--model"),
        dir.path().into(),
        data("astronaut.png").into(),
    ];
    let out = with_memory_cap(Path::new(env!("CARGO_BIN_EXE_edgelens")), &args);
    assert_clean_failure(&out, &["[input] width = 65535", "limit of 4096"]);
}

/// The same finding through the library (the module's loader thread): the manifest or the
/// decoder refuses it, in a child under the memory cap.
#[test]
fn a_manifest_with_a_huge_input_is_refused_not_an_abort() {
    assert_child_passes("child_ssd_anchors_huge_input");
}

const MANIFEST_HEAD: &str = r#"
name = "hostile"
version = "1"
format = "onnx"
file = "m.onnx"
"#;

/// The ssd-anchors manifest with `size` x `size` input, stride 1.
fn ssd_anchors_manifest(size: u32) -> String {
    format!(
        "{MANIFEST_HEAD}
[input]
width = {size}
height = {size}
layout = \"nhwc\"
dtype = \"u8\"
color = \"rgb\"

[decoder]
kind = \"ssd-anchors\"
nms_iou = 0.5
boxes = \"b\"
logits = \"l\"
num_layers = 1
min_scale = 0.2
max_scale = 0.95
aspect_ratios = [1.0]
strides = [1]
box_coder_scales = [10.0, 10.0, 5.0, 5.0]
score = \"sigmoid\"
"
    )
}

#[test]
#[ignore = "run by a_manifest_with_a_huge_input_is_refused_not_an_abort under a memory cap"]
fn child_ssd_anchors_huge_input() {
    // The same manifest at a sane size loads: only the size can make the test fail.
    let small = Manifest::parse(&ssd_anchors_manifest(64)).expect("parses");
    decoders::build(&small.decoder, &small.input).expect("64x64 builds");
    // At the manifest's limit (4096 x 4096 x 3 anchors) the decoder refuses the count.
    for size in [65535, 4096] {
        let refused = match Manifest::parse(&ssd_anchors_manifest(size)) {
            Err(e) => {
                eprintln!("manifest refused: {e}");
                true
            }
            Ok(m) => match decoders::build(&m.decoder, &m.input) {
                Err(e) => {
                    eprintln!("decoder refused: {e}");
                    true
                }
                Ok(_) => false,
            },
        };
        assert!(refused, "a {size}x{size} input with stride 1 was accepted");
    }
}

/// nanodet's `reg_max` was unbounded and `decode` allocated `reg_max + 1` floats per frame
/// before it checked the output's shape: the model loaded and warmed up (warm-up does not
/// decode), was swapped in as `ready`, and the first frame aborted the process.
#[test]
fn a_huge_nanodet_reg_max_fails_the_frame_not_the_process() {
    assert_child_passes("child_nanodet_huge_reg_max");
}

fn nanodet(reg_max: u64) -> Result<Box<dyn decoders::Decoder>, String> {
    let text = format!(
        "{MANIFEST_HEAD}
[input]
width = 16
height = 16
layout = \"nhwc\"
dtype = \"u8\"
color = \"rgb\"

[decoder]
kind = \"nanodet\"
nms_iou = 0.5
strides = [8]
reg_max = {reg_max}
scores = [\"s\"]
boxes = [\"b\"]
"
    );
    let m = Manifest::parse(&text).expect("the manifest parses");
    decoders::build(&m.decoder, &m.input).map(|(d, _)| d)
}

#[test]
#[ignore = "run by a_huge_nanodet_reg_max_fails_the_frame_not_the_process under a memory cap"]
fn child_nanodet_huge_reg_max() {
    // 16x16 at stride 8: 4 cells; boxes [1, 4, 4 * (reg_max + 1)].
    let outputs = |bins: usize| {
        Outputs(HashMap::from([
            ("s".to_string(), ArrayD::<f32>::zeros(vec![1, 4, 1])),
            ("b".to_string(), ArrayD::<f32>::zeros(vec![1, 4, 4 * bins])),
        ]))
    };
    // A sane reg_max decodes these outputs: only reg_max can make the test fail.
    let sane = nanodet(7).expect("reg_max = 7 builds");
    assert!(sane.decode(&outputs(8), 0.0).is_ok());
    // Refused at load, by name; had it loaded, the outputs would not fit it: an error for
    // the frame, not an abort.
    for huge in [1 << 40, i64::MAX as u64] {
        match nanodet(huge) {
            Err(e) => assert!(e.contains("reg_max") && e.contains("limit"), "{e}"),
            Ok(decoder) => assert!(decoder.decode(&outputs(8), 0.0).is_err()),
        }
    }
}
