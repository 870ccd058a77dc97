//! Scene cost per frame: 50 moving tracks against 16 zones and 16 lines (the 32-shape cap),
//! the worst case the twin allows. Compare with the engine's per-frame figures.

use criterion::{criterion_group, criterion_main, Criterion};
use edgelens::engine::BBox;
use edgelens::scene::{FrameObservations, Observation, Scene, SceneConfig};
use serde_json::json;

fn config() -> SceneConfig {
    let mut zones = serde_json::Map::new();
    let mut lines = serde_json::Map::new();
    for i in 0..16 {
        let (x, y) = ((i % 4) as f64 * 0.25, (i / 4) as f64 * 0.25);
        // 16-point star-ish polygons, so point-in-polygon has edges to walk.
        let poly: Vec<[f64; 2]> = (0..16)
            .map(|k| {
                let a = k as f64 / 16.0 * std::f64::consts::TAU;
                let r = if k % 2 == 0 { 0.12 } else { 0.08 };
                [x + 0.125 + r * a.cos(), y + 0.125 + r * a.sin()]
            })
            .collect();
        zones.insert(format!("z{i}"), json!({"polygon": poly}));
        lines.insert(
            format!("l{i}"),
            json!({"from": [x, y + 0.1], "to": [x + 0.25, y + 0.15]}),
        );
    }
    SceneConfig::from_json(&json!({"zones": zones, "lines": lines})).expect("valid config")
}

/// 50 tracks, each circling its own spot through zones and over lines.
fn objects(frame: u64, n: usize) -> Vec<Observation> {
    (0..n)
        .map(|k| {
            let a = (frame as f32 * 0.02) + k as f32;
            let (cx, cy) = (0.1 + 0.016 * k as f32, 0.5 + 0.3 * (k as f32 * 0.7).sin());
            let (x, y) = (cx + 0.08 * a.cos(), cy + 0.08 * a.sin());
            Observation {
                id: format!("t{k}"),
                label: if k % 3 == 0 { "car" } else { "person" }.into(),
                bbox: BBox {
                    l: x - 0.03,
                    t: y - 0.1,
                    w: 0.06,
                    h: 0.1,
                },
                score: 0.7,
            }
        })
        .collect()
}

fn bench_scene(c: &mut Criterion) {
    // How busy this scene is, so the time below can be read per message too.
    let mut scene = Scene::new(config());
    let (mut events, mut counts) = (0usize, 0usize);
    for frame in 0..1000u64 {
        let objs = objects(frame, 50);
        for m in scene.observe(&FrameObservations {
            pts_ms: frame * 100,
            objects: &objs,
            ended: &[],
        }) {
            if m.output == "events" {
                events += 1
            } else {
                counts += 1
            }
        }
    }
    println!(
        "scene bench: per frame {:.2} event and {:.2} counts messages",
        events as f64 / 1000.0,
        counts as f64 / 1000.0
    );
    let frames: Vec<Vec<Observation>> = (1000..2000).map(|f| objects(f, 50)).collect();
    let mut frame = 1000u64;
    c.bench_function("scene/observe/50-tracks-16-zones-16-lines", |b| {
        b.iter(|| {
            frame += 1;
            let objs = &frames[(frame % 1000) as usize];
            scene.observe(&FrameObservations {
                pts_ms: frame * 100,
                objects: objs,
                ended: &[],
            })
        })
    });
}

/// A typical camera: 5 tracks, 2 zones, 1 line.
fn bench_typical(c: &mut Criterion) {
    let mut cfg = config();
    cfg.zones.retain(|n, _| n == "z5" || n == "z6");
    cfg.lines.retain(|n, _| n == "l5");
    let mut scene = Scene::new(cfg);
    let frames: Vec<Vec<Observation>> = (0..1000).map(|f| objects(f, 5)).collect();
    let mut frame = 0u64;
    c.bench_function("scene/observe/5-tracks-2-zones-1-line", |b| {
        b.iter(|| {
            frame += 1;
            let objs = &frames[(frame % 1000) as usize];
            scene.observe(&FrameObservations {
                pts_ms: frame * 100,
                objects: objs,
                ended: &[],
            })
        })
    });
}

criterion_group!(benches, bench_scene, bench_typical);
criterion_main!(benches);
