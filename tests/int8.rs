//! The int8 models (models/*-int8, made by models/convert/quantize.py) against their fp32 originals,
//! on every test image, through the real engine; and `edgelens quantize` end to end.

mod common;

use common::{bin, corners, data, detect, model, run};
use edgelens::engine::{nms::iou, Detection};

const IMAGES: [&str; 4] = [
    "astronaut.png",
    "chelsea.png",
    "messi5.jpg",
    "vtest-frame.png",
];
/// (fp32 model, its int8 twin)
const PAIRS: [(&str, &str); 2] = [
    ("ssdlite-person", "ssdlite-person-int8"),
    ("ssd-mobilenetv2-oidv4", "ssd-mobilenetv2-oidv4-int8"),
];
const STRONG: f32 = 0.6;
const MIN_IOU: f32 = 0.85;

/// The best same-label partner of `d` in `others`: (IoU, |score difference|).
fn partner(d: &Detection, others: &[Detection]) -> Option<(f32, f32)> {
    others
        .iter()
        .filter(|e| e.label == d.label)
        .map(|e| {
            (
                iou(&corners(d), &corners(e)),
                (d.confidence - e.confidence).abs(),
            )
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))
}

/// Checks one image; returns the score deltas of the matched strong fp32 detections.
fn agree(fp32: &[Detection], int8: &[Detection], what: &str) -> Vec<f32> {
    let mut deltas = Vec::new();
    for d in fp32.iter().filter(|d| d.confidence > STRONG) {
        let (best_iou, delta) = partner(d, int8).unwrap_or((0.0, 1.0));
        assert!(
            best_iou > MIN_IOU,
            "{what}: fp32 {d:?} has no int8 partner (best IoU {best_iou})\nfp32 {fp32:?}\nint8 {int8:?}"
        );
        deltas.push(delta);
    }
    // No new object: every confident int8 detection is one fp32 also saw (at its own threshold).
    for e in int8.iter().filter(|e| e.confidence > STRONG) {
        let best_iou = partner(e, fp32).map_or(0.0, |p| p.0);
        assert!(
            best_iou > MIN_IOU,
            "{what}: new int8 detection {e:?} (best fp32 IoU {best_iou})\nfp32 {fp32:?}\nint8 {int8:?}"
        );
    }
    deltas
}

#[test]
fn int8_models_find_the_same_objects_as_fp32() {
    for (fp, q) in PAIRS {
        let mut deltas = Vec::new();
        let mut strong = 0;
        for image in IMAGES {
            let a = detect(fp, "ort", image);
            let b = detect(q, "ort", image);
            strong += a.iter().filter(|d| d.confidence > STRONG).count();
            deltas.extend(agree(&a, &b, &format!("{q} on {image}")));
        }
        assert!(strong > 0, "{fp}: no detection above {STRONG} to compare");
        let max = deltas.iter().cloned().fold(0.0f32, f32::max);
        let mean = deltas.iter().sum::<f32>() / deltas.len() as f32;
        eprintln!(
            "{q}: {} fp32 detections > {STRONG} matched; |score delta| max {max:.4}, mean {mean:.4}",
            deltas.len()
        );
    }
}

#[test]
fn int8_manifests_list_only_backends_that_run_them() {
    for (_, q) in PAIRS {
        let text = std::fs::read_to_string(model(q).join("model.toml")).expect("manifest");
        let m: toml::Table = toml::from_str(&text).expect("toml");
        assert_eq!(m["backends"].as_array().map(Vec::len), Some(1), "{q}");
        assert_eq!(m["backends"][0].as_str(), Some("ort"), "{q}");
        let source = m["source"].as_table().expect("[source]");
        assert!(source["calibration"]
            .as_str()
            .is_some_and(|c| c.starts_with("vtest.mp4")));
    }
}

#[test]
fn quantize_command_reports_missing_model_and_video() {
    let out = run(bin().args([
        "quantize",
        "--model",
        "/nonexistent/model",
        "--calibration",
        data("astronaut.png").to_str().expect("path"),
        "--out",
        "/tmp/never-written",
    ]));
    common::assert_clean_failure(&out, &["model.toml"]);
    let out = run(bin().args([
        "quantize",
        "--model",
        model("ssdlite-person").to_str().expect("path"),
        "--calibration",
        "/nonexistent/video.mp4",
        "--out",
        "/tmp/never-written",
    ]));
    common::assert_clean_failure(&out, &["calibration video"]);
}

#[test]
fn quantize_command_makes_a_model_that_finds_the_astronaut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("person-int8");
    let out = run(bin()
        .args(["quantize", "--frames", "8", "--model"])
        .arg(model("ssdlite-person"))
        .arg("--calibration")
        .arg(common::sample_video())
        .arg("--out")
        .arg(&out_dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quantize failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(out_dir.to_str().expect("path")), "{stdout}");
    let engine = edgelens::engine::Engine::load(
        &out_dir,
        &edgelens::engine::EngineOptions {
            backend: Some("ort".into()),
            threads: 1,
        },
    )
    .expect("the quantized model loads (sha256 and manifest checked)");
    let img = image::open(data("astronaut.png")).expect("image").to_rgb8();
    let dets = engine
        .detect_image(&img, &edgelens::engine::DetectionFilter::default())
        .expect("detect")
        .0;
    assert!(
        dets.iter()
            .any(|d| d.label == "person" && d.confidence > 0.8),
        "{dets:?}"
    );
}

/// A hostile model.toml must not make quantize.py read or write outside its folders:
/// `labels = "../../bait.txt"` read <tmp>/bait.txt and wrote it two levels above --out.
/// Each case fails before any frame is decoded, and nothing appears outside --out.
#[test]
fn quantize_command_refuses_manifest_paths_out_of_its_folders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = model("ssdlite-person");
    let text = std::fs::read_to_string(src.join("model.toml")).expect("manifest");
    std::fs::write(tmp.path().join("bait.txt"), "bait\n").expect("bait");
    let cases: [(&str, &str, &str); 5] = [
        ("labels", "../../bait.txt", "contains '..'"),
        ("license_file", "/etc/passwd", "absolute path"),
        ("labels", "link.txt", "resolves outside"),
        ("file", "../../bait.txt", "contains '..'"),
        ("name", "../../escaped", "plain name"),
    ];
    for (i, (key, value, expect)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}/models/m"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in ["ssdlite-person.onnx", "labels.txt", "LICENSE"] {
            std::fs::copy(src.join(f), dir.join(f)).expect("copy");
        }
        std::os::unix::fs::symlink(tmp.path().join("bait.txt"), dir.join("link.txt"))
            .expect("link");
        let mut m: toml::Table = toml::from_str(&text).expect("toml");
        m.insert(key.into(), toml::Value::String(value.into()));
        std::fs::write(dir.join("model.toml"), toml::to_string(&m).expect("toml")).expect("write");
        let out_dir = tmp.path().join(format!("case{i}/out/sub/int8"));
        let out = run(bin()
            .args(["quantize", "--frames", "1", "--model"])
            .arg(&dir)
            .arg("--calibration")
            .arg(common::sample_video())
            .arg("--out")
            .arg(&out_dir));
        common::assert_clean_failure(&out, &["quantize.py failed"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key) && stderr.contains(expect),
            "{key}: {stderr}"
        );
        // Refused before --out is made: nothing at all appears next to the model folder.
        let case = tmp.path().join(format!("case{i}"));
        let found: Vec<_> = std::fs::read_dir(&case)
            .expect("case dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            found,
            ["models"],
            "{key}: quantize.py wrote outside the model folder"
        );
    }
}
