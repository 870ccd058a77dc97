//! Several engine instances on consecutive frames (issue 12 §1), with real GStreamer, real
//! ONNX Runtime and the sample video: output in frame order, the same detections as one
//! instance, layout tuning on the stream, and the twin's `model.instances`.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use common::edgehub::Harness;
use common::*;
use edgelens::engine::{Engine, EngineOptions, LayoutRequest};
use edgelens::ingest::{self, IngestConfig, Mode};
use edgelens::pipeline::{LiveSettings, Pipeline, PipelineOptions, SourceInput, Stats};
use edgelens::publish::CountingSink;
use serde_json::json;

/// What one frame produced: its PTS and its detections (label, score, box).
type Seen = (u64, Vec<(String, f32, [f32; 4])>);

fn engine(instances: usize, threads: usize) -> Engine {
    let model = edgelens::model::Model::load(&model("ssdlite-person")).expect("model");
    let opts = EngineOptions {
        backend: Some("ort".into()),
        threads: 1,
    };
    let request = LayoutRequest::from_counts(instances, threads);
    Engine::from_model_layout(model, &opts, request).expect("engine")
}

/// Runs the whole sample video (lossless) through `engine`; every inferred frame in the
/// order the observer saw it, and the pipeline's stats.
fn run_sample(engine: Engine) -> (Vec<Seen>, Arc<Stats>, Arc<ArcSwap<Engine>>) {
    let spec = ingest::resolve(&sample_video().to_string_lossy(), &Default::default(), None)
        .expect("source");
    let mut config = IngestConfig::for_model(spec, engine.input_spec());
    config.mode = Mode::Lossless;
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let s = seen.clone();
    let slot = Arc::new(ArcSwap::from_pointee(engine));
    let p = Pipeline::start(
        config,
        slot.clone(),
        Arc::new(ArcSwap::from_pointee(LiveSettings::default())),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(Arc::new(move |m, _| {
                let dets = m
                    .inferences
                    .iter()
                    .map(|i| {
                        let b = &i.entity.bbox;
                        (
                            i.entity.tag.value.clone(),
                            i.entity.tag.confidence,
                            [b.l, b.t, b.w, b.h],
                        )
                    })
                    .collect();
                s.lock().expect("lock").push((m.frame.pts_ms, dets));
            })),
            ..Default::default()
        },
    )
    .expect("pipeline starts");
    let stats = p.stats.clone();
    let report = p.wait();
    report.ingest.expect("the sample plays to the end");
    let seen = seen.lock().expect("lock").clone();
    (seen, stats, slot)
}

#[test]
fn two_instances_keep_frame_order_and_find_what_one_instance_finds() {
    let (one, one_stats, _) = run_sample(engine(1, 1));
    let (two, two_stats, slot) = run_sample(engine(2, 1));
    assert_eq!(
        slot.load().instances(),
        2,
        "a fixed layout is never retuned"
    );
    assert_eq!(one.len(), 795, "every frame of the sample, lossless");
    let counts = |st: &Stats| {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        (
            l(&st.frames_inferred),
            l(&st.frames_late),
            l(&st.infer_errors),
        )
    };
    assert_eq!(
        two.len(),
        one.len(),
        "no frame lost with two instances (inferred, late, errors: {:?})",
        counts(&two_stats)
    );
    assert!(
        two.windows(2).all(|w| w[1].0 > w[0].0),
        "PTS not strictly increasing with two instances"
    );
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.0, b.0, "same frame at the same place");
        assert_eq!(a.1.len(), b.1.len(), "detections differ at pts {}", a.0);
        for (x, y) in a.1.iter().zip(&b.1) {
            assert_eq!(x.0, y.0, "label at pts {}", a.0);
            assert!(
                (x.1 - y.1).abs() < 1e-4,
                "score at pts {}: {x:?} {y:?}",
                a.0
            );
            assert!(
                x.2.iter().zip(&y.2).all(|(p, q)| (p - q).abs() < 1e-4),
                "box at pts {}: {x:?} {y:?}",
                a.0
            );
        }
    }
    for st in [&one_stats, &two_stats] {
        assert_eq!(st.frames_late.load(Ordering::Relaxed), 0, "no frame late");
        assert_eq!(st.frames_inferred.load(Ordering::Relaxed), 795);
    }
    let layout = two_stats.layout().expect("layout reported");
    assert_eq!(
        (layout.instances, layout.threads, layout.chosen),
        (2, 1, "fixed")
    );
    assert!(two_stats
        .prometheus_text()
        .contains("edgelens_frames_late_total 0"));
}

#[test]
fn auto_layout_is_tuned_on_the_stream_and_kept() {
    let auto = engine(0, 0);
    // The count alone: holding the engine here would keep its sessions alive.
    let sessions = auto.sessions();
    let (seen, stats, slot) = run_sample(auto);
    assert_eq!(seen.len(), 795, "tuning loses no frame");
    assert!(seen.windows(2).all(|w| w[1].0 > w[0].0), "PTS order");
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(
        (l(&stats.frames_late), l(&stats.infer_errors)),
        (0, 0),
        "no frame late or failed across relayouts"
    );
    let layout = stats.layout().expect("layout reported");
    let serving = slot.load().layout();
    assert_eq!(
        (layout.instances, layout.threads),
        (serving.instances, serving.threads)
    );
    let candidates = LayoutRequest::default().candidates(edgelens::engine::layout::cores());
    assert!(
        candidates.contains(&serving),
        "{serving} not among {candidates:?}"
    );
    if candidates.len() > 1 {
        assert_eq!(layout.chosen, "auto");
        assert_eq!(layout.tried.len(), candidates.len(), "{layout:?}");
        assert!(layout.tried.iter().all(|t| t.fps > 0.0), "{layout:?}");
        assert!(layout.fps.is_some_and(|f| f > 0.0));
        // Peak RSS: a relayout drops the old layout's sessions before it loads the next
        // (1x2 then 2x1 on two cores peaks at 2 sessions, not 1 + 2).
        let most = candidates.iter().map(|c| c.instances).max();
        assert_eq!(
            Some(sessions.peak()),
            most,
            "two layouts held sessions at once"
        );
        assert_eq!(sessions.live(), serving.instances);
        let tuned = slot.load_full();
        assert!(
            tuned.tuned().is_some(),
            "the chosen engine remembers its verdict"
        );
    }
}

#[test]
fn cli_run_with_two_instances_prints_messages_in_frame_order() {
    let msgs = json_lines(
        bin()
            .args([
                "run",
                "--metrics-addr",
                "off",
                "--instances",
                "2",
                "--threads",
                "1",
            ])
            .args(["--source"])
            .arg(sample_video()),
    );
    assert!(msgs.len() > 500, "{} messages", msgs.len());
    let pts: Vec<u64> = msgs
        .iter()
        .map(|m| m["frame"]["pts_ms"].as_u64().expect("pts"))
        .collect();
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "PTS not strictly increasing"
    );
    let bad = run(bin()
        .args(["run", "--instances", "0", "--source"])
        .arg(sample_video()));
    assert_clean_failure(&bad, &["--instances", "auto"]);
}

/// The twin: `model.instances` out of range is rejected with a reason; a valid one loads
/// the model with that many instances and `model.layout` reports it.
#[test]
fn twin_model_instances_is_validated_and_reported() {
    let h = Harness::start(
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}}),
        &[],
        &[],
    );
    h.hub
        .wait(Duration::from_secs(60), "auto layout reported", |s| {
            s.reported["model"]["status"] == "ready"
                && s.reported["model"]["layout"]["instances"].is_u64()
        });
    for bad in [json!(0), json!(17)] {
        let v = h.hub.patch_desired(json!({"model": {"instances": bad}}));
        h.hub
            .wait(Duration::from_secs(20), "bad instances rejected", |s| {
                s.reported["lastDesired"]["version"] == v
                    && s.reported["lastDesired"]["status"] == "rejected"
            });
        let reason = h.hub.reported()["lastDesired"]["reason"].to_string();
        assert!(reason.contains("instances"), "{bad}: {reason}");
    }
    let v = h
        .hub
        .patch_desired(json!({"model": {"instances": 2, "threads": 1}}));
    h.hub
        .wait(Duration::from_secs(60), "two instances reported", |s| {
            s.reported["appliedVersion"] == v
                && s.reported["model"]["layout"]["instances"] == 2
                && s.reported["model"]["layout"]["threads"] == 1
                && s.reported["model"]["layout"]["chosen"] == "fixed"
        });
    assert_eq!(h.hub.reported()["config"]["model"]["instances"], 2);
}

fn wait_until(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A sink that fails hard on its first message (any fault that ends the publish thread).
struct PanickingSink;

impl edgelens::publish::Sink for PanickingSink {
    fn name(&self) -> &'static str {
        "panicking"
    }

    fn send(
        &mut self,
        _msg: edgelens::publish::OutMessage,
    ) -> Result<(), edgelens::publish::PublishError> {
        panic!("sink fault (test)")
    }

    fn flush(&mut self, _timeout: Duration) -> usize {
        0
    }

    fn stats(&self) -> edgelens::publish::SinkStats {
        edgelens::publish::SinkStats::default()
    }
}

/// When the inference thread ends early (here the sink's thread died; also workers that
/// cannot start, or a panic), the pipeline says it has finished, its sources are told to
/// stop, and `wait` reports the early end. It used to report running for good: a file
/// source blocked in `push_wait`, `run` waited for a signal, the module restarted nothing.
#[test]
fn a_pipeline_whose_inference_stage_ended_says_so() {
    let engine = Engine::load(&model("ssdlite-person"), &EngineOptions::default()).expect("model");
    let v = sample_video().to_string_lossy().to_string();
    let spec = ingest::resolve(&v, &Default::default(), None).expect("source resolves");
    let input = SourceInput {
        name: "cam".into(),
        message_name: None,
        config: IngestConfig::for_model(spec, engine.input_spec()),
        max_fps: None,
    };
    let slot = Arc::new(arc_swap::ArcSwap::from_pointee(engine));
    let settings = Arc::new(arc_swap::ArcSwap::from_pointee(LiveSettings::default()));
    let p = Pipeline::start_sources(
        vec![input],
        slot,
        settings,
        Box::new(PanickingSink),
        PipelineOptions::default(),
    )
    .expect("pipeline");
    let stats = p.stats.clone();
    wait_until("a frame inferred", 60, || {
        stats.frames_inferred.load(Ordering::Relaxed) > 0
            || stats.sources.lock().map_or(0, |s| {
                s.values()
                    .map(|x| x.frames_inferred.load(Ordering::Relaxed))
                    .sum()
            }) > 0
    });
    // The sample has ~795 frames: far more than the queues hold, and far from its end.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished = p.is_finished();
    let frozen_at = stats.sources.lock().map_or(0, |s| {
        s.values()
            .map(|x| x.frames_inferred.load(Ordering::Relaxed))
            .sum::<u64>()
    });
    if !finished {
        p.stop();
    }
    // Without a stop: the stage's end told the sources to stop, so this returns.
    let report = p.wait();
    assert!(
        finished,
        "the inference stage ended ({frozen_at} frames inferred) but the pipeline still reports running"
    );
    assert!(
        report.inference.is_err(),
        "wait reports the early end: {:?}",
        report.inference
    );
}
