//! Micro-benchmarks of the Rust-side stages: preprocessing, each decoder on real model
//! outputs, and NMS. Inference itself is measured by `edgelens bench`.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use edgelens::engine::decoders::{self, RawDetection};
use edgelens::engine::{nms, preprocess, Engine, EngineOptions};
use edgelens::model::ColorOrder;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench_preprocess(c: &mut Criterion) {
    let img = image::open(root().join("tests/data/vtest-frame.png"))
        .expect("image")
        .to_rgb8();
    for name in ["ssdlite-person", "nanodet-m", "yolov8n-proxy"] {
        let model = edgelens::model::Model::load(&root().join("models").join(name)).expect("model");
        let spec = model.manifest.input.clone();
        let (resized, _) = preprocess::resize_image(&img, &spec);
        c.bench_function(&format!("preprocess/to_tensor/{name}"), |b| {
            b.iter(|| preprocess::to_tensor(resized.as_raw(), ColorOrder::Rgb, &spec))
        });
        c.bench_function(&format!("preprocess/resize_image/{name}"), |b| {
            b.iter(|| preprocess::resize_image(&img, &spec))
        });
    }
}

fn bench_decoders(c: &mut Criterion) {
    let img = image::open(root().join("tests/data/vtest-frame.png"))
        .expect("image")
        .to_rgb8();
    for name in [
        "ssdlite-person-full",
        "ssdlite-person",
        "nanodet-m",
        "yolov8n-proxy",
    ] {
        let dir = root().join("models").join(name);
        // A model that does not load is a broken bench, not a skipped one.
        let engine = Engine::load(
            &dir,
            &EngineOptions {
                backend: Some("ort".into()),
                threads: 1,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e} (run make deps)"));
        let spec = engine.input_spec().clone();
        let (resized, _) = preprocess::resize_image(&img, &spec);
        let tensor = preprocess::to_tensor(resized.as_raw(), ColorOrder::Rgb, &spec);
        let outputs = engine.raw_outputs(&tensor).expect("outputs");
        let manifest = &engine.model().manifest;
        let (decoder, thresholds) = decoders::build(&manifest.decoder, &spec).expect("decoder");
        let kind = manifest
            .decoder
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_string();
        let min = thresholds.min_confidence;
        c.bench_function(&format!("decode/{kind}/{name}"), |b| {
            b.iter(|| decoder.decode(&outputs, min).expect("decode"))
        });
    }
}

fn bench_nms(c: &mut Criterion) {
    // 2000 overlapping candidates over 4 classes: a worst case well past real frames.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let dets: Vec<RawDetection> = (0..2000)
        .map(|i| {
            let (x, y, w, h) = (
                rnd() * 0.8,
                rnd() * 0.8,
                0.05 + rnd() * 0.15,
                0.05 + rnd() * 0.15,
            );
            RawDetection {
                class: i % 4,
                score: rnd(),
                bbox: [x, y, x + w, y + h],
            }
        })
        .collect();
    c.bench_function("nms/2000-candidates", |b| {
        b.iter(|| nms::nms(dets.clone(), 0.6, 100))
    });
}

criterion_group!(benches, bench_preprocess, bench_decoders, bench_nms);
criterion_main!(benches);
