//! Real trained models on real images, through the real backends.

mod common;

use common::{assert_partners, detect, detect_at, Tolerance};
use edgelens::engine::{preprocess, Detection, DetectionFilter, Engine, EngineOptions};
use edgelens::ingest::Frame;
use edgelens::model::{ColorOrder, InputSpec, Model};

fn count(dets: &[Detection], label: &str, min_conf: f32) -> usize {
    dets.iter()
        .filter(|d| d.label.eq_ignore_ascii_case(label) && d.confidence > min_conf)
        .count()
}

#[test]
fn ssdlite_person_finds_astronaut_and_messi() {
    for image in ["astronaut.png", "messi5.jpg"] {
        let dets = detect("ssdlite-person", "ort", image);
        assert!(count(&dets, "person", 0.8) >= 1, "{image}: {dets:?}");
    }
}

#[test]
fn oidv4_finds_people_and_car_on_vtest_and_cat_on_chelsea() {
    let dets = detect("ssd-mobilenetv2-oidv4", "ort", "vtest-frame.png");
    assert!(count(&dets, "person", 0.5) >= 3, "{dets:?}");
    // This model never scores a vtest car above 0.52 in any frame: 0.45 is its honest bar.
    assert!(count(&dets, "car", 0.45) >= 1, "{dets:?}");
    let dets = detect("ssd-mobilenetv2-oidv4", "ort", "chelsea.png");
    assert!(count(&dets, "cat", 0.5) >= 1, "{dets:?}");
}

#[test]
fn nanodet_finds_person_on_messi() {
    let dets = detect("nanodet-m", "ort", "messi5.jpg");
    assert!(count(&dets, "person", 0.35) >= 1, "{dets:?}");
}

#[test]
fn yolov8_decoder_runs_on_the_proxy_graph() {
    // Untrained weights: this checks shapes, letterbox mapping and NMS, not accuracy.
    let dets = detect("yolov8n-proxy", "ort", "astronaut.png");
    assert!(
        !dets.is_empty() && dets.len() <= 100,
        "{} detections",
        dets.len()
    );
    for d in &dets {
        assert!(
            d.bbox.l >= 0.0
                && d.bbox.t >= 0.0
                && d.bbox.l + d.bbox.w <= 1.0001
                && d.bbox.t + d.bbox.h <= 1.0001,
            "{d:?}"
        );
    }
}

#[test]
fn ssd_postprocessed_graph_matches_cut_graph_decoding() {
    // The full TF OD API graph (NMS inside) against our anchor decoder on the cut graph.
    for image in ["astronaut.png", "messi5.jpg", "vtest-frame.png"] {
        let full = detect("ssdlite-person-full", "ort", image);
        let cut = detect("ssdlite-person", "ort", image);
        assert_same(&full, &cut, 0.55, EXACT, &format!("full vs cut on {image}"));
    }
}

#[cfg(feature = "tract")]
#[test]
fn ort_and_tract_agree_on_every_model_and_image() {
    const PEOPLE: &[&str] = &["astronaut.png", "messi5.jpg", "vtest-frame.png"];
    const ALL: &[&str] = &[
        "astronaut.png",
        "messi5.jpg",
        "vtest-frame.png",
        "chelsea.png",
    ];
    // A person detector finds nothing on chelsea.png (a cat), and comparing nothing proves
    // nothing. yolov8n-proxy is untrained (scores under 0.3): it proves the yolov8 decoder and
    // letterbox path agree. Thresholds sit below the manifests' for more boxes to compare.
    for (model, images, detect_above, compare_above) in [
        ("ssdlite-person", PEOPLE, 0.2, 0.3),
        ("ssd-mobilenetv2-oidv4", ALL, 0.2, 0.3),
        ("nanodet-m", ALL, 0.2, 0.3),
        ("yolov8n-proxy", ALL, 0.1, 0.15),
    ] {
        for image in images {
            let a = detect_at(model, "ort", image, Some(detect_above));
            let b = detect_at(model, "tract", image, Some(detect_above));
            let what = format!("{model} on {image}");
            let n = assert_same(&a, &b, compare_above, EXACT, &what);
            eprintln!("{what}: {n} detections agree");
        }
    }
}

/// Two runs of the same graph: boxes and scores agree to float noise.
const EXACT: Tolerance = Tolerance {
    min_iou: 0.99,
    max_score_diff: 1e-3,
};

/// Each side's detections scoring above `strong` must have a partner on the other side
/// within `tol`; a detection right at the threshold may fall either side of it, so partners
/// are searched among all. At least one detection must be compared, or the check proved
/// nothing. Returns how many were.
fn assert_same(a: &[Detection], b: &[Detection], strong: f32, tol: Tolerance, what: &str) -> usize {
    let above = |d: &Detection| d.confidence > strong;
    let compared =
        assert_partners(a, b, above, tol, what) + assert_partners(b, a, above, tol, what);
    assert!(
        compared > 0,
        "{what}: no detection above {strong} on either side, nothing compared\n{a:?}\n{b:?}"
    );
    compared
}

/// A frame as ingest delivers it when scaled for `target`, here scaled in Rust.
fn frame_for(img: &image::RgbImage, target: &InputSpec) -> Frame {
    let (scaled, geometry) = preprocess::resize_image(img, target);
    let mut pixels = scaled.into_raw();
    if target.color == ColorOrder::Bgr {
        pixels.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
    }
    Frame {
        seq: 0,
        pts_ms: Some(0),
        width: img.width(),
        height: img.height(),
        pixels,
        order: target.color,
        geometry,
        received: std::time::Instant::now(),
        source: 0,
    }
}

#[test]
fn a_frame_scaled_for_another_model_gives_the_same_detections() {
    // During a swap the first frames are still scaled for the old model: other size,
    // colour order or resize mode. The engine adapts them; boxes must land in the same place.
    let filter = DetectionFilter {
        min_confidence: Some(0.3),
        classes: vec![],
    };
    let strong = |d: &Detection| d.confidence > 0.6;
    let tol = Tolerance {
        min_iou: 0.9,
        max_score_diff: 0.3,
    };
    for (model, scaled_for) in [
        ("ssdlite-person", "nanodet-m"),
        ("ssdlite-person", "yolov8n-proxy"),
        ("nanodet-m", "ssdlite-person"),
        ("nanodet-m", "yolov8n-proxy"),
    ] {
        let engine = Engine::load(
            &common::model(model),
            &EngineOptions {
                backend: Some("ort".into()),
                threads: 1,
            },
        )
        .expect("model loads");
        let other = Model::load(&common::model(scaled_for)).expect("manifest");
        for image in ["astronaut.png", "messi5.jpg", "vtest-frame.png"] {
            let img = image::open(common::data(image)).expect("image").to_rgb8();
            let what = format!("{model} on {image} scaled for {scaled_for}");
            let own = frame_for(&img, engine.input_spec());
            let (a, _) = engine.detect_frame(&own, &filter).expect("own frame");
            let (b, _) = engine
                .detect_frame(&frame_for(&img, &other.manifest.input), &filter)
                .expect("adapted frame");
            let compared = assert_partners(&a, &b, strong, tol, &what)
                + assert_partners(&b, &a, strong, tol, &what);
            assert!(compared > 0, "{what}: nothing above 0.6 to compare\n{a:?}");
            eprintln!("{what}: {compared} detections agree");
        }
    }
}
