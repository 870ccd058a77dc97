//! The adversarial suite: whoever writes the twin or serves a model tries to run
//! GStreamer elements, read or write files outside the model, fill the disk, leak secrets
//! or stall the module. In module mode, through the harness (real mosquitto over TLS,
//! workload API, hub simulator, the real binary). After every case: nothing was written
//! where it should not be, the old model still serves, telemetry flows, and the reason the
//! module reports carries no secret.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::edgehub::*;
use common::hostile::*;
use serde_json::{json, Value};

const SECRET: &str = "S3CRETsig";

fn desired() -> Value {
    json!({"model": {"name": "ssdlite-person", "backend": "ort"}})
}

struct Scene {
    h: Harness,
    sha: String,
    /// Where escapes would land: checked after every case.
    canary: tempfile::TempDir,
    cases: usize,
}

impl Scene {
    fn start(args: &[&str]) -> Scene {
        let h = Harness::start(desired(), &[], args);
        h.wait_ready(3);
        let sha = h.hub.reported()["model"]["sha256"]
            .as_str()
            .expect("sha")
            .to_string();
        Scene {
            h,
            sha,
            canary: tempfile::tempdir().expect("canary"),
            cases: 0,
        }
    }

    fn canary(&self) -> &Path {
        self.canary.path()
    }

    /// The checks every case ends with.
    fn unharmed(&mut self, case: &str, markers: &[&str]) {
        self.cases += 1;
        // The old model still serves and telemetry flows.
        let n = self.h.hub.telemetry_count();
        self.h.hub.wait(Duration::from_secs(30), case, |s| {
            s.telemetry.len() >= n + 3 && s.reported["model"]["sha256"] == self.sha.as_str()
        });
        // Nothing escaped: no marker file under the canary, the module's temp dir or /tmp.
        for marker in markers {
            for root in [self.canary(), self.h.module.cache_dir(), Path::new("/tmp")] {
                let found = find_named(root, marker);
                assert!(found.is_empty(), "{case}: files escaped: {found:?}");
            }
        }
        let reported = self.h.hub.reported().to_string();
        let log = self.h.module.log();
        assert!(
            !reported.contains(SECRET),
            "{case}: secret in reported: {reported}"
        );
        assert!(!log.contains(SECRET), "{case}: secret in the log");
    }

    /// Applies a model patch that must fail, and waits for the failure report.
    fn model_must_fail(&mut self, case: &str, model: Value) -> String {
        let v = self.h.hub.patch_desired(json!({ "model": model }));
        self.h.hub.wait(Duration::from_secs(60), case, |s| {
            (s.reported["appliedVersion"] == v && s.reported["model"]["status"] == "failed")
                || (s.reported["lastDesired"]["version"] == v
                    && s.reported["lastDesired"]["status"] == "rejected")
        });
        let r = self.h.hub.reported();
        let reason = r["model"]["reason"]
            .as_str()
            .or(r["lastDesired"]["reason"].as_str())
            .unwrap_or_default()
            .to_string();
        assert!(!reason.is_empty(), "{case}: no reason in {r}");
        // Back to the serving model, as an operator would.
        self.h.hub.patch_desired(
            json!({"model": {"name": "ssdlite-person", "backend": "ort", "uri": null, "sha256": null}}),
        );
        reason
    }
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Issue 9 item 1: every twin string that reaches GStreamer, used to try to add elements.
#[test]
fn element_injection_through_the_twin() {
    let mut s = Scene::start(&[]);
    let target = |n: usize| -> String {
        let p: PathBuf =
            std::env::temp_dir().join(format!("edgelens-pwned-{n}-{}", std::process::id()));
        p.display().to_string()
    };
    let attempts: Vec<Value> = vec![
        json!({"uri": "rtsp://127.0.0.1:1/a b\\", "params": {"latency_ms": format!("\" ! filesink location={} ! fakesrc name=\"", target(1))}}),
        json!({"uri": "rtsp://127.0.0.1:1/cam", "params": {"latency_ms": format!("100 ! filesink location={}", target(2))}}),
        json!({"uri": format!("test ! filesink location={}", target(3))}),
        json!({"uri": format!("rtsp://127.0.0.1:1/x\" ! filesink location={} ! fakesink name=\"", target(4))}),
        json!({"uri": "test", "params": {format!("pattern=ball ! filesink location={} ! fakesink name", target(5)): "x"}}),
        json!({"uri": "test", "params": {"pattern": format!("ball ! filesink location={}", target(6))}}),
        json!({"uri": format!("file:///nonexistent.mp4 ! filesink location={}", target(7))}),
    ];
    let n = attempts.len();
    for (i, source) in attempts.into_iter().enumerate() {
        s.h.hub.patch_desired(json!({ "source": source }));
        std::thread::sleep(Duration::from_secs(2));
        // Back to the command line's source.
        s.h.hub.patch_desired(json!({"source": null}));
        s.unharmed(&format!("injection {i}"), &["edgelens-pwned-"]);
    }
    assert_eq!(s.cases, n);
    eprintln!("hostile: {n} element-injection attempts");
}

/// Issue 9 items 2 and 5: archives and folders that point outside the model, and bombs.
#[test]
fn hostile_archives_and_manifests() {
    let mut s = Scene::start(&["--max-model-mb", "40"]);
    let work = tempfile::tempdir().expect("work");
    let marker = format!("edgelens-escape-{}", std::process::id());
    let cases: Vec<(&str, Evil)> = vec![
        (
            "symlink entry",
            Evil::Symlink {
                name: "labels.txt.evil".into(),
                target: "/etc/passwd".into(),
            },
        ),
        (
            "symlink out",
            Evil::Symlink {
                name: format!("{marker}-sym"),
                target: "../../../../../../tmp".into(),
            },
        ),
        (
            "hard link entry",
            Evil::HardLink {
                name: format!("{marker}-hard"),
                target: "/etc/passwd".into(),
            },
        ),
        (
            "dot-dot entry",
            Evil::RawName {
                name: format!("../../../../../../tmp/{marker}-dotdot"),
            },
        ),
        (
            "absolute entry",
            Evil::RawName {
                name: format!("/tmp/{marker}-abs"),
            },
        ),
        (
            "char device",
            Evil::CharDevice {
                name: format!("{marker}-dev"),
            },
        ),
        (
            "fifo",
            Evil::Fifo {
                name: format!("{marker}-fifo"),
            },
        ),
    ];
    let n_archives = cases.len();
    for (i, (case, evil)) in cases.into_iter().enumerate() {
        let a = evil_archive(
            work.path(),
            &format!("evil{i}.tar.gz"),
            "ssdlite-person",
            evil,
        );
        let reason = s.model_must_fail(
            case,
            json!({"uri": file_uri(&a), "sha256": sha256_file(&a), "backend": "ort"}),
        );
        eprintln!("hostile archive '{case}': {reason}");
        s.unharmed(case, &[&marker]);
    }
    // A gzip bomb: 1 MB packed, 1.2 GB unpacked; the cap is 4x the 40 MB download cap.
    let bomb = gzip_bomb(work.path(), 1_200_000_000);
    let reason = s.model_must_fail(
        "gzip bomb",
        json!({"uri": file_uri(&bomb), "sha256": sha256_file(&bomb), "backend": "ort"}),
    );
    eprintln!(
        "hostile archive 'gzip bomb' ({} bytes packed): {reason}",
        std::fs::metadata(&bomb).map(|m| m.len()).unwrap_or(0)
    );
    s.unharmed("gzip bomb", &[]);
    let cache_bytes = dir_bytes(s.h.module.cache_dir());
    assert!(
        cache_bytes < 200 << 20,
        "the bomb filled the cache: {cache_bytes} bytes"
    );
    // Manifests that point outside their folder.
    let manifests: Vec<(&str, String)> = vec![
        (
            "labels ../",
            "labels = \"../../../../../../etc/passwd\"".into(),
        ),
        ("labels absolute", "labels = \"/etc/passwd\"".into()),
        (
            "weights ../",
            "file = \"../../../../../../etc/passwd\"".into(),
        ),
    ];
    let n_manifests = manifests.len() + 1;
    for (case, line) in manifests {
        let key = line.split(' ').next().unwrap_or_default().to_string();
        let dir = model_folder_with(work.path(), "ssdlite-person", |m| {
            *m = m
                .lines()
                .map(|l| {
                    if l.starts_with(&format!("{key} =")) {
                        line.clone()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        });
        let reason = s.model_must_fail(case, json!({"uri": file_uri(&dir), "backend": "ort"}));
        eprintln!("hostile manifest '{case}': {reason}");
        s.unharmed(case, &[]);
        std::fs::remove_dir_all(&dir).ok();
    }
    // A labels file that is a symlink to /etc/passwd inside an otherwise fine folder.
    let dir = model_folder_with(work.path(), "ssdlite-person", |_| {});
    std::fs::remove_file(dir.join("labels.txt")).expect("rm labels");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("labels.txt")).expect("symlink");
    let reason = s.model_must_fail(
        "labels symlink",
        json!({"uri": file_uri(&dir), "backend": "ort"}),
    );
    eprintln!("hostile manifest 'labels symlink': {reason}");
    s.unharmed("labels symlink", &[]);
    eprintln!("hostile: {n_archives} archive entries, 1 gzip bomb, {n_manifests} manifests");
}

fn dir_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Issue 9 items 3, 4 and the twin's own limits: secrets in URIs, bursts of patches during
/// a load, 1 MB documents and deep nesting.
#[test]
fn hostile_twin_documents_and_secrets() {
    let mut s = Scene::start(&[]);
    // Secrets in a model URL that cannot be fetched, and in a camera URL.
    let reason = s.model_must_fail(
        "sas token in model uri",
        json!({"uri": format!("https://user:{SECRET}@127.0.0.1:1/m.tar.gz?sv=1&sig={SECRET}"), "sha256": "0".repeat(64)}),
    );
    assert!(
        reason.contains("127.0.0.1"),
        "the reason names the host: {reason}"
    );
    s.unharmed("sas token in model uri", &[]);
    // The applied camera is echoed in reported config without its password (it was verbatim).
    let v = s.h.hub.patch_desired(json!({"source": {
        "uri": format!("rtsp://admin:{SECRET}@127.0.0.1:1/cam"),
        "params": {"latency_ms": "200"}
    }}));
    s.h.hub
        .wait(Duration::from_secs(30), "camera applied", |st| {
            st.reported["appliedVersion"] == v
        });
    let echoed = s.h.hub.reported()["config"]["source"].clone();
    assert_eq!(echoed["uri"], "rtsp://***@127.0.0.1:1/cam", "{echoed}");
    assert_eq!(echoed["params"]["latency_ms"], "200", "{echoed}");
    // A camera URL given as a string is rejected with serde's text, which quotes it: a
    // password holding '(' or '\'' (legal in userinfo) slipped past redact::text.
    for pw in [format!("pa({SECRET})"), format!("it's{SECRET}")] {
        let v =
            s.h.hub
                .patch_desired(json!({"source": format!("rtsp://admin:{pw}@127.0.0.1:1/cam")}));
        s.h.hub
            .wait(Duration::from_secs(30), "string source rejected", |st| {
                st.reported["lastDesired"]["version"] == v
                    && st.reported["lastDesired"]["status"] == "rejected"
            });
        let reason = s.h.hub.reported()["lastDesired"]["reason"].to_string();
        assert!(reason.contains("rtsp://***@127.0.0.1:1/cam"), "{reason}");
    }
    std::thread::sleep(Duration::from_secs(3));
    s.h.hub.patch_desired(json!({"source": null}));
    s.unharmed("camera password", &[]);

    // A burst of patches while a model loads: one load, and the last word wins.
    s.h.hub
        .patch_desired(json!({"model": {"name": "ssd-mobilenetv2-oidv4", "backend": "ort"}}));
    let mut last = 0;
    for i in 0..10 {
        last =
            s.h.hub
                .patch_desired(json!({"detection": {"minConfidence": 0.3 + i as f64 / 100.0}}));
    }
    s.h.hub
        .wait(Duration::from_secs(60), "burst settled", |st| {
            st.reported["appliedVersion"] == last && st.reported["model"]["status"] == "ready"
        });
    let loads =
        s.h.module
            .log()
            .lines()
            .filter(|l| l.contains("loading model off the hot path") && l.contains("oidv4"))
            .count();
    assert_eq!(loads, 1, "a burst of patches started {loads} loads");
    s.h.hub.patch_desired(
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}, "detection": null}),
    );
    s.h.hub.wait(Duration::from_secs(60), "swap back", |st| {
        st.reported["model"]["status"] == "ready"
            && st.reported["model"]["sha256"] == s.sha.as_str()
    });
    s.unharmed("burst during a load", &[]);

    // A 1 MB document (the hub simulator's client caps packets at 1 MiB): rejected with a
    // reason, nothing else changes.
    let big = format!(
        "{{\"output\": {{\"name\": \"{}\"}}}}",
        "x".repeat(1_000_000)
    );
    let v = s.h.hub.patch_raw(big.as_bytes());
    s.h.hub
        .wait(Duration::from_secs(30), "1 MB document rejected", |st| {
            st.reported["lastDesired"]["version"] == v
                && st.reported["lastDesired"]["status"] == "rejected"
        });
    s.unharmed("1 MB document", &[]);
    // 200 levels of nesting.
    let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let v = s.h.hub.patch_raw(deep.as_bytes());
    s.h.hub
        .wait(Duration::from_secs(30), "deep document rejected", |st| {
            st.reported["lastDesired"]["version"] == v
                && st.reported["lastDesired"]["status"] == "rejected"
        });
    s.unharmed("200-level nesting", &[]);
    eprintln!("hostile: 2 secret cases, 1 burst, 2 oversized/deep documents");
}
