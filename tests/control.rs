//! The control plane under hostile or unlucky conditions, in module mode through the
//! harness (real mosquitto over TLS, workload API, hub simulator, the real binary).

mod common;

use std::time::Duration;

use common::edgehub::*;
use serde_json::{json, Value};

fn desired() -> Value {
    json!({"model": {"name": "ssdlite-person", "backend": "ort"}})
}

fn source_of(topic: &str) -> String {
    common::edgehub::topic_property(topic, "source").unwrap_or_default()
}

/// Issue 9 item 8: a partial `source` patch keeps the command line's camera.
#[test]
fn a_partial_source_patch_keeps_the_command_line_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cam = dir.path().join("cam7.mp4");
    std::fs::copy(common::sample_video(), &cam).expect("copy sample");
    let cam = cam.to_string_lossy().to_string();
    let h = Harness::start(
        desired(),
        &[],
        &["--source", &cam, "--min-confidence", "0.4"],
    );
    h.wait_ready(3);
    let v = h.hub.patch_desired(json!({"source": {"maxFps": 5}}));
    h.hub.wait(Duration::from_secs(20), "maxFps applied", |s| {
        s.reported["appliedVersion"] == v
    });
    let n = h.hub.telemetry_count();
    h.hub
        .wait(Duration::from_secs(30), "telemetry after the patch", |s| {
            s.telemetry.len() >= n + 5
        });
    let st = h.hub.state.lock().expect("lock");
    for (topic, _, _) in &st.telemetry[n..] {
        assert_eq!(
            source_of(topic),
            "cam7.mp4",
            "the camera was replaced: {topic}"
        );
    }
    let cfg = &st.reported["config"];
    assert_eq!(cfg["source"]["maxFps"], 5.0, "{cfg}");
    assert_eq!(cfg["source"]["uri"], cam.as_str(), "{cfg}");
    // --min-confidence stays the base for detection too.
    assert_eq!(
        cfg["detection"]["minConfidence"]
            .as_f64()
            .map(|f| (f * 100.0).round()),
        Some(40.0),
        "{cfg}"
    );
}

/// Review (rev-input): `--source rtsp://user:pw@...` was echoed verbatim in reported config.
/// The camera is not there (refused port): the module still reports, and nothing it reports
/// or logs while retrying carries the password.
#[test]
fn the_command_line_camera_password_is_not_reported() {
    const SECRET: &str = "S3CRETcam";
    let cam = format!(
        "rtsp://admin:{SECRET}@127.0.0.1:{}/cam",
        common::free_port()
    );
    let h = Harness::start(
        desired(),
        &[],
        &["--source", &cam, "--set", "latency_ms=50"],
    );
    h.hub.wait(Duration::from_secs(60), "config reported", |s| {
        s.reported["config"]["source"]["uri"].is_string()
    });
    // Let the source fail and retry at least once, so its errors are in the log.
    std::thread::sleep(Duration::from_secs(3));
    let reported = h.hub.reported();
    let source = &reported["config"]["source"];
    assert!(
        source["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("rtsp://***@127.0.0.1:")),
        "{source}"
    );
    assert_eq!(source["params"]["latency_ms"], "50", "{source}");
    assert!(!reported.to_string().contains(SECRET), "{reported}");
    let log = h.module.log();
    assert!(!log.contains(SECRET), "the log has the password:\n{log}");
}

/// Issue 9 item 8: options module mode cannot honour are refused, not ignored.
#[test]
fn module_mode_rejects_options_it_cannot_honour() {
    let ca = TestCa::new();
    let workload = WorkloadServer::start(&ca.ca_pem);
    for args in [
        &["--pipeline", "videotestsrc ! fakesink"][..],
        &["--live"][..],
    ] {
        let mut m = Module::start(&workload, 1, &[], args);
        let status = m.child.0.wait().expect("module exits");
        assert_eq!(status.code(), Some(2), "{args:?}");
        let log = m.log();
        assert!(
            log.contains("not available in module mode"),
            "{args:?}: {log}"
        );
    }
}

/// Issue 9 item 4: patches that do not change the model start no load while one runs.
#[test]
fn patches_during_a_load_start_no_second_load() {
    let h = Harness::start(desired(), &[], &[]);
    h.wait_ready(3);
    let v1 = h
        .hub
        .patch_desired(json!({"model": {"name": "nanodet-m", "backend": "ort"}}));
    let v2 = h
        .hub
        .patch_desired(json!({"detection": {"minConfidence": 0.6}}));
    let v3 = h
        .hub
        .patch_desired(json!({"detection": {"minConfidence": 0.55}}));
    assert!(v1 < v2 && v2 < v3);
    h.hub.wait(Duration::from_secs(60), "nanodet ready", |s| {
        s.reported["appliedVersion"] == v3
            && s.reported["model"]["status"] == "ready"
            && s.reported["model"]["name"] == "nanodet-m"
    });
    let log = h.module.log();
    let loads = log
        .lines()
        .filter(|l| l.contains("loading model off the hot path") && l.contains("nanodet-m"))
        .count();
    assert_eq!(loads, 1, "one load for three patches:\n{log}");
    // The twin named the model the command line already serves: no reload at start.
    let reloads = log
        .lines()
        .filter(|l| l.contains("loading model off the hot path") && l.contains("ssdlite-person"))
        .count();
    assert_eq!(reloads, 0, "the serving model was loaded again:\n{log}");
}

/// Issue 9 item 13: a twin GET answered with an error or garbage is retried.
#[test]
fn a_failed_twin_get_is_retried() {
    let h = Harness::start_with(
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}, "output": {"name": "people"}}),
        &[],
        &[],
        |s| s.bad_gets = 2,
    );
    h.hub.wait(
        Duration::from_secs(30),
        "the twin applied after retries",
        |s| s.gets >= 3 && s.reported["appliedVersion"] == 1,
    );
    h.hub.wait(
        Duration::from_secs(30),
        "telemetry on the twin's output",
        |s| {
            s.telemetry
                .iter()
                .any(|(t, _, _)| t.contains("%24.on=people&"))
        },
    );
    assert!(h.module.log().contains("twin GET failed; retrying"));
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Issue 9 item 10: /metrics follows the running pipeline across restarts (a file loops in
/// module mode, and each loop is a new pipeline) and its counters never go back.
#[test]
fn metrics_stay_current_and_monotonic_across_source_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("short.mp4");
    let ok = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=20",
            "!",
            "video/x-raw,format=I420,width=320,height=240,framerate=20/1",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", clip.display()))
        .status()
        .expect("gst-launch")
        .success();
    assert!(ok, "made the short clip");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let clip_s = clip.to_string_lossy().to_string();
    let h = Harness::start(
        desired(),
        &[],
        &["--source", &clip_s, "--metrics-addr", &addr],
    );
    h.hub.wait(Duration::from_secs(60), "model ready", |s| {
        s.reported["model"]["status"] == "ready"
    });
    let mut last = 0;
    let mut samples = Vec::new();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(800));
        let n = counter(&scrape(port), "edgelens_frames_in_total");
        assert!(n >= last, "counter went back: {samples:?} then {n}");
        last = n;
        samples.push(n);
    }
    // The clip has 20 frames at 20 fps: after ~5 s the counter must have passed several loops.
    assert!(last > 40, "stale /metrics after a restart: {samples:?}");
}

/// Issue 11 in module mode: events and counts go to their own outputs with routing
/// properties, zones apply live from the twin, and a bad zone is rejected with a reason.
#[test]
fn module_mode_sends_events_and_counts_and_rejects_bad_zones() {
    let h = Harness::start(desired(), &[], &["--output-mode", "events"]);
    h.hub.wait(Duration::from_secs(60), "model ready", |s| {
        s.reported["model"]["status"] == "ready"
    });
    let v = h.hub.patch_desired(json!({
        "zones": {"walkway": {"polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 1.0], [0.0, 1.0]], "classes": ["person"], "minFrames": 2}},
        "lines": {"middle": {"from": [0.5, 0.0], "to": [0.5, 1.0]}},
        "output": {"countsEverySecs": 5}
    }));
    h.hub.wait(Duration::from_secs(20), "zones applied", |s| {
        s.reported["appliedVersion"] == v
    });
    h.hub.wait(
        Duration::from_secs(90),
        "new, zone and counts messages",
        |s| {
            let on = |out: &'static str| {
                let tag = format!("%24.on={out}&");
                s.telemetry
                    .iter()
                    .filter(move |(t, _, _)| t.contains(&tag))
                    .collect::<Vec<_>>()
            };
            on("events")
                .iter()
                .any(|(t, _, _)| t.contains("eventType=new"))
                && on("events")
                    .iter()
                    .any(|(_, b, _)| b.to_string().contains("zoneEntered"))
                && !on("counts").is_empty()
        },
    );
    {
        let st = h.hub.state.lock().expect("lock");
        assert!(
            st.telemetry
                .iter()
                .all(|(t, _, _)| !t.contains("%24.on=detections&")),
            "events mode sent per-frame messages"
        );
        let new = st
            .telemetry
            .iter()
            .find(|(t, _, _)| t.contains("eventType=new"))
            .expect("a new event");
        assert!(new.0.contains("label=person"), "{}", new.0);
        let entity = &new.1["inferences"][0]["entity"];
        assert!(
            entity["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{}",
            new.1
        );
        // Batched events (eventsBatchSecs) share a message only when a route filter cannot
        // tell them apart: every event's eventType and every entity's label match the
        // message's properties, and trackId lists exactly the message's tracks.
        for (topic, body, _) in st
            .telemetry
            .iter()
            .filter(|(t, _, _)| t.contains("%24.on=events&"))
        {
            let infs = body["inferences"].as_array().expect("inferences");
            let prop = |k: &str| topic_property(topic, k).unwrap_or_default();
            let mut ids: Vec<String> = Vec::new();
            for i in infs {
                if let Some(e) = i.get("entity") {
                    assert_eq!(
                        e["tag"]["value"].as_str(),
                        Some(prop("label").as_str()),
                        "{topic}"
                    );
                    let id = e["id"].as_str().unwrap_or_default().to_string();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                if let Some(e) = i.get("event") {
                    assert_eq!(
                        e["properties"]["eventType"].as_str(),
                        Some(prop("eventType").as_str()),
                        "{topic}"
                    );
                }
            }
            assert_eq!(prop("trackId"), ids.join(","), "{topic}");
        }
    }
    let bad = h
        .hub
        .patch_desired(json!({"zones": {"x": {"polygon": [[0.1, 0.1], [2.0, 0.1]]}}}));
    h.hub
        .wait(Duration::from_secs(20), "bad zone rejected", |s| {
            s.reported["lastDesired"]["version"] == bad
                && s.reported["lastDesired"]["status"] == "rejected"
        });
    let reason = h.hub.reported()["lastDesired"]["reason"].to_string();
    assert!(reason.contains("zones.x"), "{reason}");
}

/// IoT Hub merges every patch into desired, rejected or not. A fix that follows a rejected
/// patch must apply all of desired at its version, the rejected patch's valid fields too, not
/// only its own (found by a hostile review: the module merged patches into the last accepted
/// document, and reported a version applied while running a different config).
#[test]
fn a_fix_after_a_rejected_patch_applies_the_whole_desired_document() {
    let h = Harness::start(
        json!({
            "model": {"name": "ssdlite-person", "backend": "ort", "threads": 1},
            "detection": {"minConfidence": 0.5},
            "output": {"name": "detections"}
        }),
        &[],
        &[],
    );
    h.wait_ready(1);
    let bad = h.hub.patch_desired(json!({
        "detection": {"minConfidence": 0.7},
        "zones": {"door": {"polygon": [[0.1, 0.1], [2.0, 0.1], [0.5, 0.5]]}}
    }));
    h.hub
        .wait(Duration::from_secs(30), "the bad patch rejected", |s| {
            s.reported["lastDesired"]["version"] == bad
                && s.reported["lastDesired"]["status"] == "rejected"
        });
    assert_eq!(
        h.hub.reported()["config"]["detection"]["minConfidence"],
        json!(0.5),
        "nothing of a rejected patch runs"
    );
    // The operator fixes the zone only: desired now holds minConfidence 0.7 and a good zone.
    let fixed = h.hub.patch_desired(json!({
        "zones": {"door": {"polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.5]]}}
    }));
    h.hub
        .wait(Duration::from_secs(30), "the fixed patch applied", |s| {
            s.reported["appliedVersion"] == fixed
        });
    let r = h.hub.reported();
    assert!(r["config"]["zones"]["door"].is_object(), "{}", r["config"]);
    assert_eq!(
        r["config"]["detection"]["minConfidence"],
        json!(0.7),
        "desired v{fixed} holds detection.minConfidence 0.7; the module reports v{fixed} applied with {}",
        r["config"]["detection"]
    );
    let applied = r["config"].clone();
    h.hub.patch_raw(b"{not json");
    h.hub
        .wait(Duration::from_secs(20), "non-JSON rejection", |s| {
            s.reported["lastDesired"]["status"] == "rejected"
        });
    assert_eq!(
        h.hub.reported()["config"],
        applied,
        "a non-JSON patch changes nothing"
    );
    // Desired grown past what the module mirrors (4 x 64 KiB): rejected, and desired is read
    // again from the hub, so the next patch still builds on all of it.
    let junk = h.hub.patch_desired(json!({"notes": "x".repeat(300_000)}));
    h.hub
        .wait(Duration::from_secs(30), "oversized desired rejected", |s| {
            s.reported["lastDesired"]["version"] == junk
                && s.reported["lastDesired"]["status"] == "rejected"
        });
    let back = h.hub.patch_desired(json!({"notes": null}));
    h.hub
        .wait(Duration::from_secs(30), "desired back under the cap", |s| {
            s.reported["appliedVersion"] == back
        });
    assert_eq!(h.hub.reported()["config"], applied, "desired re-read whole");
}
