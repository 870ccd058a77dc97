//! Several sources in one process (issue 12 section 3), against real GStreamer and ORT:
//! each source's messages carry its name, a dead or broken source among live ones stalls
//! nobody, and sources come and go through the twin without touching the others.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use common::edgehub::Harness;
use common::*;
use edgelens::engine::{Engine, EngineOptions};
use edgelens::ingest::{self, IngestConfig};
use edgelens::pipeline::{LiveSettings, Pipeline, PipelineOptions, SourceInput};
use edgelens::publish::CountingSink;
use serde_json::{json, Value};

fn engine() -> Engine {
    Engine::load(&model("ssdlite-person"), &EngineOptions::default()).expect("model")
}

fn input(engine: &Engine, name: &str, uri: &str) -> SourceInput {
    let spec = ingest::resolve(uri, &BTreeMap::new(), None).expect("source resolves");
    SourceInput {
        name: name.into(),
        message_name: None,
        config: IngestConfig::for_model(spec, engine.input_spec()),
        max_fps: None,
    }
}

fn pts(m: &Value) -> u64 {
    let f = &m["frame"];
    f["pts_ms"].as_u64().or(f["ptsMs"].as_u64()).expect("pts")
}

/// Three sources on one command line: every message names its source, each source's
/// `--max-fps` applies to its own timeline (one rate limit per source), and each source's
/// frames arrive in its own order.
#[test]
fn three_sources_in_one_process_each_carry_their_name() {
    let v = sample_video().to_string_lossy().to_string();
    let msgs = json_lines(bin().args([
        "run",
        "--metrics-addr",
        "off",
        "--max-fps",
        "1",
        "--model",
        &model("ssdlite-person").to_string_lossy(),
        "--source",
        &format!("door={v}"),
        "--source",
        &format!("yard={v}"),
        "--source",
        &v,
    ]));
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in &msgs {
        let s = m["source"].as_str().expect("source").to_string();
        by.entry(s).or_default().push(pts(m));
    }
    assert_eq!(
        by.keys().collect::<Vec<_>>(),
        ["door", "vtest.mp4", "yard"],
        "a bare --source is named after its file"
    );
    for (name, p) in &by {
        assert!(p.len() >= 40, "{name}: only {} messages", p.len());
        for w in p.windows(2) {
            assert!(
                w[1] >= w[0] + 990,
                "{name}: frames {w:?} closer than its own --max-fps 1 allows"
            );
        }
    }
}

/// Fair turns: a camera that never answers (rtsp on a port nobody serves), a file that is
/// not a video, a live test camera and a file decoding as fast as it can. The live ones
/// keep flowing, the camera gets its turns despite the greedy file, the dead one only
/// reconnects and the broken one ends alone.
#[test]
fn a_dead_and_a_broken_source_stall_no_live_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = write_file(dir.path(), "broken.mp4", &[7u8; 50_000]);
    let engine = engine();
    let dead = format!("rtsp://127.0.0.1:{}/nobody", free_port());
    let sources = vec![
        input(&engine, "dead", &dead),
        input(&engine, "broken", &broken.to_string_lossy()),
        input(&engine, "camera", "test"),
        input(&engine, "file", &sample_video().to_string_lossy()),
    ];
    let seen = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let counts = seen.clone();
    let mut p = Pipeline::start_sources(
        sources,
        Arc::new(ArcSwap::from_pointee(engine)),
        Arc::new(ArcSwap::from_pointee(LiveSettings::default())),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(Arc::new(move |m, _| {
                *counts
                    .lock()
                    .expect("lock")
                    .entry(m.source.clone())
                    .or_default() += 1;
            })),
            ..Default::default()
        },
    )
    .expect("pipeline starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ended = BTreeMap::new();
    loop {
        ended.extend(p.take_finished());
        let snap = p.stats.snapshot();
        let n = |s: &str| seen.lock().expect("lock").get(s).copied().unwrap_or(0);
        let restarts = snap.sources.get("dead").map_or(0, |s| s.restarts);
        if n("camera") >= 60 && n("file") >= 60 && restarts >= 1 && ended.contains_key("broken") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stalled: seen {:?}, ended {:?}, stats {:?}",
            seen.lock().expect("lock"),
            ended.keys().collect::<Vec<_>>(),
            snap.sources
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        ended["broken"].is_err(),
        "the broken file ends with its error"
    );
    let snap = p.stats.snapshot();
    let cam = &snap.sources["camera"];
    // A scheduler that served the file whenever it had a frame would leave the camera
    // next to nothing; in turns the camera gets at least every other inference.
    assert!(
        cam.frames_inferred * 10 >= cam.frames_in * 3,
        "camera starved: {cam:?}"
    );
    assert_eq!(snap.sources["dead"].frames_inferred, 0);
    assert!(!snap.sources.contains_key("broken") || snap.sources["broken"].frames_inferred == 0);
    let text = p.stats.prometheus_text();
    assert!(
        text.contains("edgelens_source_frames_inferred_total{source=\"camera\"}"),
        "{text}"
    );
    // One family per name: labelled per-source series never clash with the totals.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(types.len(), unique.len(), "{text}");
    p.stop();
    p.wait();
}

/// A source stopped for a restart keeps its counters; removed, it leaves stats and
/// /metrics, also when no ingest thread runs any more (it ended and waits to retry).
#[test]
fn a_removed_source_leaves_the_stats_whether_or_not_its_ingest_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = write_file(dir.path(), "broken.mp4", &[7u8; 50_000]);
    let engine = engine();
    let sources = vec![
        input(&engine, "broken", &broken.to_string_lossy()),
        input(&engine, "camera", "test"),
    ];
    let mut p = Pipeline::start_sources(
        sources,
        Arc::new(ArcSwap::from_pointee(engine)),
        Arc::new(ArcSwap::from_pointee(LiveSettings::default())),
        Box::new(CountingSink::default()),
        PipelineOptions::default(),
    )
    .expect("pipeline starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ended = Vec::new();
    let inferred = |p: &Pipeline| p.stats.snapshot().sources["camera"].frames_inferred;
    while ended.is_empty() || inferred(&p) < 5 {
        assert!(Instant::now() < deadline, "the broken file never ended");
        ended.extend(p.take_finished().into_iter().map(|(n, _)| n));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ended, ["broken"]);
    assert!(p.stats.snapshot().sources.contains_key("broken"));
    assert!(p.remove_source("broken").is_none(), "no ingest thread ran");
    let before = p.stats.snapshot().sources["camera"].frames_in;
    assert!(p.stop_source("camera").is_some());
    let kept = p.stats.snapshot().sources["camera"].frames_in;
    assert!(kept >= before, "a stop for a restart keeps the counters");
    p.remove_source("camera");
    let snap = p.stats.snapshot();
    assert!(snap.sources.is_empty(), "{:?}", snap.sources);
    assert!(!p.stats.prometheus_text().contains("source=\"camera\""));
    p.stop();
    p.wait();
}

fn source_of(topic: &str) -> String {
    common::edgehub::topic_property(topic, "source").unwrap_or_default()
}

/// (arrival, pts) of one source's frame messages so far.
fn frames_of(h: &Harness, source: &str) -> Vec<(Instant, u64)> {
    let st = h.hub.state.lock().expect("lock");
    st.telemetry
        .iter()
        .filter(|(t, b, _)| source_of(t) == source && b.get("inferences").is_some())
        .map(|(_, b, at)| (*at, pts(b)))
        .collect()
}

/// A source added through the twin starts; removed, it stops; the other source keeps
/// running through both patches: its timeline never starts over and its counters stay.
#[test]
fn adding_and_removing_a_source_through_the_twin_leaves_the_other_running() {
    let v = sample_video().to_string_lossy().to_string();
    let desired = json!({
        "model": {"name": "ssdlite-person", "backend": "ort"},
        "sources": {"a": {"uri": v}}
    });
    let h = Harness::start(desired, &[], &["--output-mode", "frames"]);
    let wait_for = |what: &str, pred: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pred() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("a's messages", &|| frames_of(&h, "a").len() >= 5);
    let v1 = h.hub.patch_desired(json!({"sources": {"b": {"uri": v}}}));
    h.hub.wait(Duration::from_secs(30), "b added", |s| {
        s.reported["appliedVersion"] == v1
    });
    assert!(h.hub.reported()["config"]["sources"]["b"].is_object());
    wait_for("b's messages", &|| frames_of(&h, "b").len() >= 5);
    let a_before = frames_of(&h, "a").len();
    let v2 = h.hub.patch_desired(json!({"sources": {"b": null}}));
    h.hub.wait(Duration::from_secs(30), "b removed", |s| {
        s.reported["appliedVersion"] == v2
    });
    // The hub merges reported patches: the echo must delete b, not just leave it out.
    let config = &h.hub.reported()["config"];
    assert!(config["sources"].get("b").is_none(), "{config}");
    assert!(config["sources"]["a"].is_object(), "{config}");
    std::thread::sleep(Duration::from_secs(2));
    let b_after = frames_of(&h, "b").len();
    wait_for("a still flowing", &|| {
        frames_of(&h, "a").len() >= a_before + 10
    });
    assert_eq!(
        frames_of(&h, "b").len(),
        b_after,
        "b still sends after removal"
    );
    // The sample runs about 80 s in real time: a restart of `a` would start its PTS over.
    let a = frames_of(&h, "a");
    for w in a.windows(2) {
        assert!(
            w[1].1 >= w[0].1 || w[0].1 > 70_000,
            "a's timeline started over (restarted): {} then {}",
            w[0].1,
            w[1].1
        );
    }
    h.hub
        .wait(Duration::from_secs(30), "stats per source", |s| {
            let src = &s.reported["stats"]["sources"];
            src["a"]["framesInferred"].as_u64().unwrap_or(0) > 0 && src.get("b").is_none()
        });
}

/// getStats now (the module's `stats_json`, what reported properties carry).
fn stats(h: &Harness) -> Value {
    let (_, body) = h
        .hub
        .call_method("getStats", json!({}), Duration::from_secs(10))
        .expect("getStats answered");
    body
}

fn frames_in(s: &Value, source: &str) -> u64 {
    s["sources"][source]["framesIn"].as_u64().unwrap_or(0)
}

fn wait_until(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A patch that removes a source and also changes the snapshot container (which restarts
/// every source) drops the removed source from reported stats (and /metrics); it used to
/// stay there with frozen counters, for good.
#[test]
fn a_source_removed_in_the_same_patch_as_a_container_change_leaves_the_stats() {
    let v = sample_video().to_string_lossy().to_string();
    let desired = json!({
        "model": {"name": "ssdlite-person", "backend": "ort"},
        "sources": {"a": {"uri": v}, "b": {"uri": v}}
    });
    let h = Harness::start(desired, &[], &[]);
    h.wait_ready(1);
    wait_until("a and b counted", 90, || {
        let s = stats(&h);
        frames_in(&s, "a") > 0 && frames_in(&s, "b") > 0
    });
    let version = h.hub.patch_desired(json!({
        "snapshots": {"container": "other-box"},
        "sources": {"b": null}
    }));
    h.hub.wait(Duration::from_secs(60), "patch applied", |s| {
        s.reported["appliedVersion"] == version
    });
    // The pipeline restarted with `a` only; give `a` time to count again.
    wait_until("a counting after the restart", 60, || {
        frames_in(&stats(&h), "a") > 0
    });
    std::thread::sleep(Duration::from_secs(3));
    let s = stats(&h);
    let b = &s["sources"]["b"];
    assert!(
        b.is_null(),
        "removed source b is still reported with counters: {b}"
    );
}

/// A source whose uri changes through the twin restarts with its counters kept: they stay
/// monotonic (they used to start over, which Prometheus reads as a counter reset).
#[test]
fn a_source_restarted_through_the_twin_keeps_its_counters() {
    let v = sample_video().to_string_lossy().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("copy.mp4");
    std::fs::copy(sample_video(), &other).expect("copy the sample");
    let desired = json!({
        "model": {"name": "ssdlite-person", "backend": "ort"},
        "sources": {"a": {"uri": v}}
    });
    let h = Harness::start(desired, &[], &[]);
    h.wait_ready(1);
    let mut before = 0;
    wait_until("a counted 30 frames", 90, || {
        before = frames_in(&stats(&h), "a");
        before >= 30
    });
    let version = h.hub.patch_desired(json!({
        "sources": {"a": {"uri": other.to_string_lossy()}}
    }));
    h.hub.wait(Duration::from_secs(60), "patch applied", |s| {
        s.reported["appliedVersion"] == version
    });
    let after = frames_in(&stats(&h), "a");
    assert!(
        after >= before,
        "a's framesIn went from {before} to {after} across a twin restart"
    );
}
