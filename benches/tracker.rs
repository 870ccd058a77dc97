//! Tracker cost per frame with 50 objects (issue 11: <= 0.2 ms per frame).
//!
//! Two synthetic scenes of 50 walkers, bouncing inside a 1920x1080 frame, with box jitter,
//! scores spread over both ByteTrack stages and one object in ten missing per frame:
//! - `spread`: the whole frame, as a street camera sees it;
//! - `crowd`: squeezed into 480x270, so that most boxes overlap others (the assignment's worst
//!   case: large connected components for the Hungarian step).
//!
//! Each iteration is one `update` on the next frame of a 1000-frame loop.

use criterion::{criterion_group, criterion_main, Criterion};
use edgelens::engine::{BBox, Detection};
use edgelens::track::{self, TrackerConfig};

const OBJECTS: usize = 50;
const FRAMES: usize = 1000;

/// A small deterministic generator (no rand dependency for a bench).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn scene(area_w: f32, area_h: f32) -> Vec<Vec<Detection>> {
    let mut r = Lcg(42);
    let mut objs: Vec<[f32; 6]> = (0..OBJECTS)
        .map(|_| {
            let h = 60.0 + 120.0 * r.next();
            [
                area_w * r.next(),
                area_h * r.next(),
                0.4 * h,
                h,
                6.0 * (r.next() - 0.5),
                3.0 * (r.next() - 0.5),
            ]
        })
        .collect();
    (0..FRAMES)
        .map(|_| {
            let mut dets = Vec::with_capacity(OBJECTS);
            for o in objs.iter_mut() {
                for (p, v, max) in [(0, 4, area_w - o[2]), (1, 5, area_h - o[3])] {
                    o[p] += o[v];
                    if o[p] < 0.0 || o[p] > max {
                        o[v] = -o[v];
                        o[p] = o[p].clamp(0.0, max);
                    }
                }
                if r.next() < 0.1 {
                    continue;
                }
                let j = |r: &mut Lcg, s: f32| 0.05 * s * (r.next() - 0.5) * 2.0;
                dets.push(Detection {
                    label: "person".into(),
                    class_id: 0,
                    confidence: 0.2 + 0.8 * r.next(),
                    bbox: BBox {
                        l: o[0] + j(&mut r, o[2]),
                        t: o[1] + j(&mut r, o[3]),
                        w: o[2] * (1.0 + j(&mut r, 1.0)),
                        h: o[3] * (1.0 + j(&mut r, 1.0)),
                    },
                });
            }
            dets
        })
        .collect()
}

fn bench_trackers(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker_update_50");
    for (scene_name, frames) in [
        ("spread", scene(1920.0, 1080.0)),
        ("crowd", scene(480.0, 270.0)),
    ] {
        for name in track::names() {
            let mut tracker = track::by_name(name, TrackerConfig::default()).expect("tracker");
            // Warm up to a steady number of tracks before timing.
            for f in &frames[..100] {
                tracker.update(f);
            }
            let mut i = 100;
            group.bench_function(format!("{name}/{scene_name}"), |b| {
                b.iter(|| {
                    i = (i + 1) % FRAMES;
                    tracker.update(&frames[i])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_trackers);
criterion_main!(benches);
