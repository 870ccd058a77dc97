//! The video pipeline against real GStreamer, a real RTSP server and a real mosquitto.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use common::*;
use edgelens::engine::{Engine, EngineOptions};
use edgelens::ingest::{self, IngestConfig};
use edgelens::pipeline::{LiveSettings, Pipeline, PipelineOptions};
use edgelens::publish::CountingSink;

fn engine() -> Engine {
    Engine::load(&model("ssdlite-person"), &EngineOptions::default()).expect("model")
}

/// Starts a pipeline whose observer records every inferred frame's PTS.
fn start(config: IngestConfig, settings: LiveSettings) -> (Pipeline, Arc<Mutex<Vec<u64>>>) {
    let pts = Arc::new(Mutex::new(Vec::new()));
    let seen = pts.clone();
    let p = Pipeline::start(
        config,
        Arc::new(ArcSwap::from_pointee(engine())),
        Arc::new(ArcSwap::from_pointee(settings)),
        Box::new(CountingSink::default()),
        PipelineOptions {
            observer: Some(Arc::new(move |m, _| {
                seen.lock().expect("lock").push(m.frame.pts_ms)
            })),
            ..Default::default()
        },
    )
    .expect("pipeline starts");
    (p, pts)
}

#[test]
fn sample_video_produces_person_messages() {
    let msgs = json_lines(
        bin()
            .args(["run", "--metrics-addr", "off", "--source"])
            .arg(sample_video())
            .arg("--model")
            .arg(model("ssdlite-person")),
    );
    assert!(
        msgs.len() > 500,
        "only {} messages on 795 frames of pedestrians",
        msgs.len()
    );
    let persons = msgs
        .iter()
        .flat_map(|m| m["inferences"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["entity"]["tag"]["value"] == "person")
        .count();
    assert!(
        persons > msgs.len(),
        "{persons} person detections in {} messages",
        msgs.len()
    );
    assert_eq!(msgs[0]["source"], "vtest.mp4");
    assert_eq!(msgs[0]["frame"]["width"], 768);
    assert_eq!(msgs[0]["frame"]["height"], 576);
    // Lossless file mode: PTS strictly increasing, 100 ms apart at 10 fps.
    let pts: Vec<u64> = msgs
        .iter()
        .map(|m| m["frame"]["pts_ms"].as_u64().expect("pts"))
        .collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "PTS not increasing");
}

#[test]
fn test_preset_frames_arrive_in_pts_order() {
    let mut set = BTreeMap::new();
    set.insert("num_buffers".to_string(), "45".to_string());
    set.insert("fps".to_string(), "30".to_string());
    let spec = ingest::resolve("test", &set, None).expect("preset");
    let mut config = IngestConfig::for_model(spec, engine().input_spec());
    config.fail_fast = true; // the live source ends after 45 buffers: stop there
    let (p, pts) = start(config, LiveSettings::default());
    let report = p.wait();
    assert!(
        report.ingest.is_err(),
        "a fail-fast live source reports its end"
    );
    let pts = pts.lock().expect("lock").clone();
    assert!(pts.len() >= 20, "only {} frames inferred", pts.len());
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "PTS out of order: {pts:?}"
    );
}

#[test]
fn rtsp_source_survives_server_restart() {
    let port = free_port();
    let server = start_rtsp(port);
    let spec = ingest::resolve(
        &format!("rtsp://127.0.0.1:{port}/test"),
        &BTreeMap::new(),
        None,
    )
    .expect("rtsp");
    assert!(spec.live);
    let mut config = IngestConfig::for_model(spec, engine().input_spec());
    config.max_backoff = Duration::from_secs(2);
    config.stall_timeout = Duration::from_secs(3);
    let (p, _pts) = start(config, LiveSettings::default());
    let stats = p.stats.clone();
    let frames = || stats.ingest.frames_in.load(Ordering::SeqCst);
    let wait = |n: u64, secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        while frames() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        frames()
    };
    assert!(wait(15, 20) >= 15, "no frames from the RTSP server");
    drop(server); // the camera goes away
    std::thread::sleep(Duration::from_secs(2));
    let during = frames();
    let _server = start_rtsp(port);
    let killed_at = Instant::now();
    let after = wait(during + 15, 40);
    assert!(
        after >= during + 15,
        "frames did not resume: {during} -> {after}"
    );
    assert!(stats.ingest.restarts.load(Ordering::SeqCst) >= 1);
    eprintln!(
        "rtsp: {during} frames before the kill, resumed {:.1} s after restart, {} restarts",
        killed_at.elapsed().as_secs_f32(),
        stats.ingest.restarts.load(Ordering::SeqCst)
    );
    p.stop();
    assert!(p.wait().ingest.is_ok());
}

/// Messages the stdout sink prints for the sample: the reference count for the MQTT test.
fn stdout_messages() -> Vec<serde_json::Value> {
    json_lines(
        bin()
            .args(["run", "--metrics-addr", "off", "--source"])
            .arg(sample_video()),
    )
}

#[test]
fn mqtt_sink_delivers_every_message_to_mosquitto() {
    let broker = Mosquitto::start();
    let collector = Collector::subscribe(broker.port, "edgelens/test");
    let out = run(bin()
        .args([
            "run",
            "--metrics-addr",
            "off",
            "--topic",
            "edgelens/test",
            // Frame messages on the topic itself (--mqtt defaults to events).
            "--output-mode",
            "frames",
            "--mqtt",
        ])
        .arg(format!("mqtt://127.0.0.1:{}", broker.port))
        .arg("--source")
        .arg(sample_video()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "the MQTT sink must not print messages"
    );
    let expected = stdout_messages();
    let got = collector.wait_for(expected.len(), Duration::from_secs(10));
    assert_eq!(
        got,
        expected.len(),
        "broker got {got} of {} messages",
        expected.len()
    );
    let msgs = collector.messages.lock().expect("lock");
    let pts: Vec<u64> = msgs
        .iter()
        .map(|(_, p)| {
            serde_json::from_slice::<serde_json::Value>(p).expect("json")["frame"]["pts_ms"]
                .as_u64()
                .expect("pts")
        })
        .collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "messages out of order");
}

#[test]
fn sigterm_exits_within_5s_and_flushes_queued_messages() {
    let broker = Mosquitto::start();
    let collector = Collector::subscribe(broker.port, "edgelens/term");
    let child = bin()
        .args([
            "run",
            "--metrics-addr",
            "off",
            "--realtime",
            "--topic",
            "edgelens/term",
            // Frame messages on the topic itself (--mqtt defaults to events).
            "--output-mode",
            "frames",
            "--mqtt",
        ])
        .arg(format!("mqtt://127.0.0.1:{}", broker.port))
        .arg("--source")
        .arg(sample_video())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = ChildGuard(child);
    std::thread::sleep(Duration::from_secs(4));
    let sent_at = Instant::now();
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            sent_at.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent_at.elapsed();
    let stderr = read_stderr(&mut child);
    assert!(status.success(), "exit {status:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped"))
        .expect("final stats line");
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in {line}"))
    };
    let (messages, undelivered) = (field("messages"), field("undelivered"));
    assert!(messages > 10, "{line}");
    assert_eq!(undelivered, 0, "{line}");
    let got = collector.wait_for(messages as usize, Duration::from_secs(5));
    assert_eq!(
        got as u64, messages,
        "broker got {got} of {messages} accepted messages"
    );
    eprintln!(
        "SIGTERM: exited in {} ms with {messages} messages, all delivered",
        took.as_millis()
    );
}

#[test]
fn bad_sources_fail_clearly() {
    let bench_out = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("webcam", "unknown source or preset 'webcam'"),
        ("/no/such/clip.mp4", "not found"),
        ("tests/data/not-an-image.jpg", "failed"),
    ];
    for (source, expect) in cases {
        let out = run(bin().current_dir(root()).args([
            "run",
            "--metrics-addr",
            "off",
            "--source",
            source,
        ]));
        assert_clean_failure(&out, &[expect]);
        let out = run(bin()
            .current_dir(root())
            .args([
                "bench", "--quiet", "--frames", "10", "--video", source, "--out",
            ])
            .arg(bench_out.path()));
        assert_clean_failure(&out, &[expect]);
    }
}

#[test]
fn unreachable_rtsp_retries_in_run_and_fails_fast_in_bench() {
    let port = free_port(); // nothing listens here
    let url = format!("rtsp://127.0.0.1:{port}/none");
    let out = run(bin().args(["bench", "--quiet", "--frames", "10", "--video", &url]));
    assert_clean_failure(&out, &["127.0.0.1"]);

    let child = bin()
        .args(["run", "--metrics-addr", "off", "--source", &url])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = ChildGuard(child);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        child.0.try_wait().expect("wait").is_none(),
        "run gave up on an unreachable camera"
    );
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = child.0.wait().expect("wait");
    let stderr = read_stderr(&mut child);
    let retries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("reconnecting"))
        .collect();
    assert!(retries.len() >= 2, "expected logged retries: {stderr}");
    assert!(
        retries[1].contains("retry_in_s=2"),
        "backoff should double: {stderr}"
    );
    assert!(
        status.success(),
        "SIGTERM while retrying exits cleanly: {status:?}"
    );
}

#[test]
fn max_fps_skips_frames_and_counts_them() {
    let mut set = BTreeMap::new();
    set.insert("num_buffers".to_string(), "60".to_string());
    set.insert("fps".to_string(), "30".to_string());
    let spec = ingest::resolve("test", &set, None).expect("preset");
    let mut config = IngestConfig::for_model(spec, engine().input_spec());
    config.fail_fast = true;
    let (p, pts) = start(
        config,
        LiveSettings {
            max_fps: Some(5.0),
            ..Default::default()
        },
    );
    let stats = p.stats.clone();
    let _ = p.wait();
    let pts = pts.lock().expect("lock").clone();
    let skipped = stats.frames_skipped.load(Ordering::SeqCst);
    // 60 frames at 30 fps = 2 s of stream at 5 fps: about 10 inferred, the rest skipped.
    assert!(
        (8..=12).contains(&pts.len()),
        "inferred {} frames: {pts:?}",
        pts.len()
    );
    assert!(pts.windows(2).all(|w| w[1] - w[0] >= 190), "{pts:?}");
    assert!(skipped >= 40, "only {skipped} skipped");
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    use std::io::Write;
    let port = free_port();
    let child = bin()
        .args(["run", "--realtime", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--source")
        .arg(sample_video())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _child = ChildGuard(child);
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "metrics port never opened"
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for metric in [
        "edgelens_frames_in_total",
        "edgelens_frames_dropped_total",
        "edgelens_frames_inferred_total",
        "edgelens_inference_seconds_bucket",
        "edgelens_messages_published_total",
        "edgelens_model_info{backend=\"ort\",model=\"ssdlite-person\",version=\"1\"} 1",
    ] {
        assert!(body.contains(metric), "{metric} missing:\n{body}");
    }
    let inferred: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("edgelens_frames_inferred_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("inferred count");
    assert!(inferred > 5.0, "{inferred}");
}
