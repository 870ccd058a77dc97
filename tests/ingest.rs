//! Ingest against real GStreamer: presets become elements and typed properties, never launch
//! text, so twin and CLI values cannot add elements (issue 9, item 1), and camera credentials
//! stay out of errors and logs (item 3).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use common::*;
use edgelens::ingest::{
    self, Frame, FrameQueue, Ingest, IngestConfig, IngestError, IngestStats, Mode, ScaleTarget,
    SourceSpec,
};
use edgelens::model::ColorOrder;
use gstreamer as gst;
use gstreamer::prelude::*;

fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn target() -> ScaleTarget {
    ScaleTarget {
        width: 320,
        height: 240,
        letterbox: true,
        order: ColorOrder::Rgb,
    }
}

fn config(spec: SourceSpec, mode: Mode) -> IngestConfig {
    IngestConfig {
        spec,
        mode,
        target: Arc::new(ArcSwap::from_pointee(target())),
        fail_fast: true,
        max_backoff: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(3),
    }
}

/// Runs `config` on a thread, collecting up to `max` frames (then stopping) or until it ends.
fn collect(config: IngestConfig, max: usize) -> (Vec<Frame>, Result<(), IngestError>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (queue, rx) = FrameQueue::bounded(4);
    let ingest = Ingest::new(config, Arc::new(IngestStats::default()), stop.clone());
    let handle = std::thread::spawn(move || ingest.run(&queue));
    let mut frames = Vec::new();
    while frames.len() < max {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(f) => frames.push(f),
            Err(_) => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    let result = handle.join().expect("ingest thread");
    (frames, result)
}

/// Factory names of every element in the built pipeline, sorted.
fn factories(pipeline: &gst::Pipeline) -> Vec<String> {
    let mut names: Vec<String> = pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.factory().map(|f| f.name().to_string()))
        .collect();
    names.sort();
    names
}

/// The hostile values of issue 9: a `source.uri` ending in `\` and a `params` value that,
/// under the old gst-launch quoting, closed the quote and added a filesink.
fn payload(target_file: &Path) -> (String, String) {
    (
        "rtsp://127.0.0.1:1/x\\".to_string(),
        format!(
            " ! filesink location={} rtspsrc name=",
            target_file.display()
        ),
    )
}

#[test]
fn the_payload_did_inject_a_filesink_under_the_old_launch_quoting() {
    // The removed quote(), verbatim: this is what the twin's values used to go through.
    fn quote(v: &str) -> String {
        let plain = v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-+%@=?&~,".contains(c));
        if plain && !v.is_empty() {
            v.to_string()
        } else {
            format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
        }
    }
    ingest::init().expect("gstreamer");
    let dir = tempfile::tempdir().expect("tempdir");
    let (uri, latency) = payload(&dir.path().join("pwned"));
    let launch = format!(
        "rtspsrc location={} latency={} protocols=tcp ! decodebin caps=video/x-raw ! fakesink",
        quote(&uri),
        quote(&latency)
    );
    let old = gst::parse::launch(&launch)
        .expect("the old text parses")
        .downcast::<gst::Pipeline>()
        .expect("pipeline");
    assert!(
        factories(&old).contains(&"filesink".to_string()),
        "the payload no longer reproduces the old injection: {:?}",
        factories(&old)
    );
}

#[test]
fn the_payload_in_params_is_refused_as_a_bad_integer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pwned");
    let (uri, latency) = payload(&file);
    let e = ingest::resolve(&uri, &params(&[("latency_ms", &latency)]), None)
        .expect_err("a non-integer latency must be refused")
        .to_string();
    assert!(
        e.contains("'latency_ms'") && e.contains("rtspsrc") && e.contains("unsigned integer"),
        "{e}"
    );
    let e = ingest::resolve(&uri, &params(&[("latency_ms", "fast")]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'latency_ms'") && e.contains("integer"), "{e}");
    assert!(!file.exists());
}

#[test]
fn the_payload_in_the_uri_stays_one_property_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pwned");
    let (uri, latency) = payload(&file);
    // Everything in one string property: the worst a string value can do.
    let hostile = format!(
        "{uri}\" latency=\"{latency}\" protocols=tcp ! decodebin ! filesink location={}",
        file.display()
    );
    let spec = ingest::resolve(&hostile, &BTreeMap::new(), None).expect("a string is a string");
    let built = ingest::build(&spec, &target(), Mode::Live).expect("build");
    assert_eq!(
        factories(&built.pipeline),
        [
            "appsink",
            "capsfilter",
            "capsfilter",
            "decodebin",
            "queue",
            "rtspsrc",
            "typefind", // inside decodebin
            "videoconvert",
            "videoscale"
        ]
    );
    drop(built);
    let (frames, result) = collect(config(spec, Mode::Live), 1);
    assert!(frames.is_empty());
    assert!(result.is_err(), "no camera behind that URL");
    assert!(!file.exists(), "a file was written: {}", file.display());
}

#[test]
fn unknown_param_keys_are_refused_by_name() {
    let e = ingest::resolve("test", &params(&[("colour", "red")]), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'colour'") && e.contains("fps, height, name, num_buffers, pattern, width"),
        "{e}"
    );
    let e = ingest::resolve("test", &params(&[("pattern", "plaid")]), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("'pattern'") && e.contains("smpte"), "{e}");
}

#[test]
fn the_sample_video_plays_every_frame() {
    let spec = ingest::resolve(
        sample_video().to_str().expect("utf-8 path"),
        &BTreeMap::new(),
        None,
    )
    .expect("file");
    assert!(!spec.live);
    let (frames, result) = collect(config(spec, Mode::Lossless), usize::MAX);
    result.expect("the file plays to its end");
    assert_eq!(frames.len(), 795, "vtest.mp4 has 795 frames");
    let f = &frames[0];
    assert_eq!((f.width, f.height), (768, 576));
    assert_eq!(f.pixels.len(), target().frame_bytes());
    // 768x576 letterboxed into 320x240 fills it exactly (same 4:3 aspect).
    assert_eq!((f.geometry.content_w, f.geometry.content_h), (320.0, 240.0));
    assert!(frames.windows(2).all(|w| w[1].seq == w[0].seq + 1));
}

#[test]
fn the_test_preset_delivers_frames_at_its_caps() {
    let spec = ingest::resolve(
        "test",
        &params(&[("width", "400"), ("height", "200"), ("fps", "60")]),
        None,
    )
    .expect("test preset");
    let (frames, _) = collect(config(spec, Mode::Live), 10);
    assert_eq!(frames.len(), 10);
    assert_eq!((frames[0].width, frames[0].height), (400, 200));
    // 2:1 letterboxed into 4:3: black bars top and bottom.
    let g = frames[0].geometry;
    assert_eq!((g.content_w, g.content_h), (320.0, 160.0));
}

#[test]
fn raw_launch_text_remains_a_cli_escape_hatch() {
    let spec = ingest::raw(
        "videotestsrc num-buffers=12 ! video/x-raw,width=160,height=120",
        false,
        "pipeline",
    );
    let (frames, result) = collect(config(spec, Mode::Lossless), usize::MAX);
    result.expect("raw pipeline plays");
    assert_eq!(frames.len(), 12);
    assert_eq!((frames[0].width, frames[0].height), (160, 120));
    // Dynamic pads inside the raw text are linked by gst-launch itself.
    let uri = format!("file://{}", sample_video().display());
    let spec = ingest::raw(&format!("uridecodebin uri={uri}"), false, "pipeline");
    let (frames, result) = collect(config(spec, Mode::Lossless), 5);
    assert_eq!(frames.len(), 5, "{result:?}");
}

/// Log lines the ingest thread writes, at debug level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn camera_credentials_stay_out_of_errors_and_logs() {
    let port = free_port(); // nothing listens: the connection is refused
    let src = format!("rtsp://user:p@ss@127.0.0.1:{port}/x");
    let spec = ingest::resolve(&src, &BTreeMap::new(), None).expect("rtsp");
    assert!(
        !spec.name.contains("user") && !spec.name.contains("p@ss"),
        "{}",
        spec.name
    );
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let stop = Arc::new(AtomicBool::new(false));
    let (queue, _rx) = FrameQueue::bounded(1);
    let ingest = Ingest::new(
        config(spec, Mode::Live),
        Arc::new(IngestStats::default()),
        stop,
    );
    let err = tracing::subscriber::with_default(subscriber, || ingest.run(&queue))
        .expect_err("nothing listens on that port")
        .to_string();
    let logs = String::from_utf8_lossy(&logs.0.lock().expect("lock")).to_string();
    assert!(logs.contains("building pipeline"), "{logs}");
    for text in [&err, &logs] {
        assert!(!text.contains("user") && !text.contains("p@ss"), "{text}");
    }
    let bad = ingest::resolve(&src, &params(&[("latency_ms", "x")]), None)
        .unwrap_err()
        .to_string();
    assert!(!bad.contains("user") && !bad.contains("p@ss"), "{bad}");
}

/// A custom preset may take the camera password as its own parameter (rtspsrc `user-pw`):
/// the "building pipeline" log line and Debug showed it, since it is no URL.
#[test]
fn a_password_property_of_a_custom_preset_is_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cam.toml"),
        "live = true\nelement = \"rtspsrc\"\ndecode = true\n[properties]\n\
         location = \"{uri}\"\nuser-id = \"{user}\"\nuser-pw = \"{password}\"\n",
    )
    .expect("preset");
    let p = params(&[
        ("uri", "rtsp://127.0.0.1:1/x"),
        ("user", "admin"),
        ("password", "S3CRETpw"),
    ]);
    let spec = ingest::resolve("cam", &p, Some(dir.path())).expect("custom preset");
    for text in [spec.describe(), format!("{spec:?}")] {
        assert!(!text.contains("S3CRETpw"), "{text}");
        assert!(
            text.contains("user-pw=") && text.contains("127.0.0.1:1/x"),
            "{text}"
        );
    }
}

#[test]
fn the_cli_refuses_a_non_integer_latency_before_starting() {
    let out = run(bin().args([
        "run",
        "--metrics-addr",
        "off",
        "--source",
        "rtsp://127.0.0.1:1/x",
        "--set",
        "latency_ms=abc",
    ]));
    assert_clean_failure(&out, &["latency_ms", "integer"]);
}

#[test]
fn twin_source_values_cannot_add_elements_or_leak_credentials() {
    use common::edgehub::Harness;
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pwned");
    let (_, latency) = payload(&file);
    let h = Harness::start(
        json!({
            "model": {"name": "ssdlite-person", "backend": "ort", "threads": 1},
            "output": {"name": "detections"}
        }),
        &[],
        &[],
    );
    h.hub.wait(Duration::from_secs(30), "ready", |s| {
        s.reported["model"]["status"] == "ready" && s.telemetry.len() >= 3
    });
    let cases = [
        (
            json!({"source": {"uri": "rtsp://user:p@ss@127.0.0.1:1/x\\", "params": {"latency_ms": latency}}}),
            "latency_ms",
        ),
        (
            json!({"source": {"uri": "rtsp://user:p@ss@127.0.0.1:1/x", "params": {"launch": "videotestsrc ! filesink"}}}),
            "'launch'",
        ),
        (
            json!({"source": {"uri": "test", "params": {"pattern": "ball ! filesink location=/tmp/x"}}}),
            "'pattern'",
        ),
    ];
    for (patch, mention) in cases {
        let v = h.hub.patch_desired(patch.clone());
        h.hub.wait(Duration::from_secs(20), "rejection", |s| {
            s.reported["lastDesired"]["version"] == v
                && s.reported["lastDesired"]["status"] == "rejected"
        });
        let reason = h.hub.reported()["lastDesired"]["reason"].to_string();
        assert!(reason.contains(mention), "{patch}: {reason}");
        assert!(
            !reason.contains("user") && !reason.contains("p@ss"),
            "{patch}: {reason}"
        );
        let n = h.hub.telemetry_count();
        h.hub
            .wait(Duration::from_secs(10), "telemetry keeps flowing", |s| {
                s.telemetry.len() > n
            });
        // The hub keeps a rejected patch in desired: take it out before the next case.
        let back = h.hub.patch_desired(json!({"source": null}));
        h.hub.wait(Duration::from_secs(20), "undone", |s| {
            s.reported["appliedVersion"] == back
        });
    }
    assert!(!file.exists(), "a file was written: {}", file.display());
    let log = h.module.log();
    assert!(!log.contains("p@ss"), "module log has the camera password");
}
