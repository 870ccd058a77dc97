//! edgelens as an IoT Edge module, against a real mosquitto (TLS), a workload API and a hub simulator.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::edgehub::*;
use serde_json::{json, Value};

/// (client id, username, token check) per CONNECT the broker saw.
type Connects = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Result<u64, String>)>>>;

fn initial_desired() -> Value {
    json!({
        "model": {"name": "ssdlite-person", "backend": "ort", "threads": 1},
        "detection": {"minConfidence": 0.5},
        "output": {"name": "detections"}
    })
}

fn ready_sha(h: &Harness) -> String {
    h.hub.reported()["model"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn model_of(msg: &(String, Value, Instant)) -> String {
    msg.1["model"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn telemetry_twin_and_methods() {
    let h = Harness::start(initial_desired(), &[], &[]);
    h.hub
        .wait(Duration::from_secs(30), "twin GET + applied report", |s| {
            s.gets >= 1
                && s.reported["appliedVersion"] == 1
                && s.reported["model"]["status"] == "ready"
        });
    h.hub.wait(Duration::from_secs(30), "telemetry", |s| {
        s.telemetry.len() >= 5
    });
    let st = h.hub.state.lock().expect("lock");
    let (topic, body, _) = &st.telemetry[0];
    assert!(
        topic.starts_with(&format!(
            "devices/{DEVICE}/modules/{MODULE}/messages/events/%24.on=detections&%24.ct=application%2Fjson&%24.ce=utf-8&"
        )),
        "{topic}"
    );
    for prop in ["source=vtest.mp4", "model=ssdlite-person", "modelVersion=1"] {
        assert!(topic.contains(prop), "{prop} missing in {topic}");
    }
    assert_eq!(body["inferences"][0]["entity"]["tag"]["value"], "person");
    assert_eq!(body["model"]["name"], "ssdlite-person");
    assert_eq!(st.reported["config"]["output"]["name"], "detections");
    drop(st);

    let (status, stats) = h
        .hub
        .call_method("getStats", json!({}), Duration::from_secs(10))
        .expect("getStats answered");
    assert_eq!(status, "200");
    assert!(stats["framesInferred"].as_u64().unwrap_or(0) > 0, "{stats}");
    let (status, snap) = h
        .hub
        .call_method("snapshot", json!({}), Duration::from_secs(10))
        .expect("snapshot answered");
    assert_eq!(status, "200");
    assert_eq!(snap["model"]["name"], "ssdlite-person");
    let (status, err) = h
        .hub
        .call_method("reboot", json!({}), Duration::from_secs(10))
        .expect("unknown method answered");
    assert_eq!(status, "404");
    assert!(err["message"]
        .as_str()
        .unwrap_or_default()
        .contains("unknown method 'reboot'"));

    // A detection patch applies live; an output rename moves telemetry.
    let v = h.hub.patch_desired(json!({"output": {"name": "people"}}));
    h.hub.wait(Duration::from_secs(20), "output rename", |s| {
        s.reported["appliedVersion"] == v
    });
    let n = h.hub.telemetry_count();
    h.hub.wait(
        Duration::from_secs(20),
        "telemetry on the new output",
        |s| {
            s.telemetry[n..]
                .iter()
                .any(|(t, _, _)| t.contains("%24.on=people&"))
        },
    );
}

#[test]
fn broker_outage_delivers_queued_messages_in_order() {
    let mut h = Harness::start(initial_desired(), &[], &[]);
    h.hub.wait(Duration::from_secs(30), "telemetry", |s| {
        s.telemetry.len() >= 10
    });
    let before = h.hub.telemetry_count();
    h.broker.stop();
    let down = Instant::now();
    let down_utc = chrono::Utc::now();
    std::thread::sleep(Duration::from_secs(4));
    let up_utc = chrono::Utc::now();
    h.broker.restart();
    let outage = down.elapsed();
    // The module reconnects, reads the twin again and sends its queue.
    h.hub
        .wait(Duration::from_secs(40), "a GET after reconnect", |s| {
            s.gets >= 2
        });
    std::thread::sleep(Duration::from_secs(3));
    let (status, stats) = h
        .hub
        .call_method("getStats", json!({}), Duration::from_secs(10))
        .expect("getStats");
    assert_eq!(status, "200");
    let sent = stats["messages"].as_u64().expect("messages");
    h.hub.wait(Duration::from_secs(20), "every message", |s| {
        let ids: HashSet<String> = s
            .telemetry
            .iter()
            .map(|m| m.1["inferences"][0]["inferenceId"].to_string())
            .collect();
        ids.len() as u64 >= sent
    });
    let st = h.hub.state.lock().expect("lock");
    let mut seen = HashSet::new();
    let unique: Vec<&(String, Value, Instant)> = st
        .telemetry
        .iter()
        .filter(|m| seen.insert(m.1["inferences"][0]["inferenceId"].to_string()))
        .collect();
    let pts: Vec<u64> = unique
        .iter()
        .map(|m| m.1["frame"]["pts_ms"].as_u64().expect("pts"))
        .collect();
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "out of order after reconnect: {pts:?}"
    );
    // Messages the module made while the broker was down (by their own timestamp): all of
    // them must have arrived, after the restart.
    let made_while_down: Vec<&&(String, Value, Instant)> = unique
        .iter()
        .filter(|m| {
            chrono::DateTime::parse_from_rfc3339(m.1["timestamp"].as_str().unwrap_or_default())
                .map(|t| t >= down_utc && t <= up_utc)
                .unwrap_or(false)
        })
        .collect();
    assert!(made_while_down.iter().all(|m| m.2 >= down + outage));
    assert_eq!(stats["outboxDropped"], 0);
    eprintln!(
        "outage {:.1} s: {} messages before it; {} made while the broker was down, all delivered after the restart, in order; {} unique in total (module had sent {sent} when asked); {} duplicates",
        outage.as_secs_f32(),
        before,
        made_while_down.len(),
        unique.len(),
        st.telemetry.len() - unique.len()
    );
    // 4 s of a 10 fps stream in which nearly every frame has a person.
    assert!(
        made_while_down.len() >= 30,
        "only {} messages made during the outage arrived",
        made_while_down.len()
    );
    // The stream goes on after getStats answered: at least that many arrived.
    assert!(unique.len() as u64 >= sent);
}

#[test]
fn model_swap_while_frames_flow() {
    let h = Harness::start(initial_desired(), &[], &[]);
    h.hub.wait(Duration::from_secs(30), "ready", |s| {
        s.reported["model"]["status"] == "ready" && s.telemetry.len() >= 5
    });
    let first_sha = ready_sha(&h);
    let swaps = [
        json!({"model": {"name": "ssd-mobilenetv2-oidv4", "backend": "ort"}}),
        json!({"model": {"name": "ssdlite-person", "backend": "tract"}}),
        json!({"model": {"name": "ssdlite-person-tf", "backend": "tensorflow"}}),
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}}),
    ];
    for patch in swaps {
        let name = patch["model"]["name"].as_str().expect("name").to_string();
        let backend = patch["model"]["backend"]
            .as_str()
            .expect("backend")
            .to_string();
        let n = h.hub.telemetry_count();
        let v = h.hub.patch_desired(patch.clone());
        h.hub.wait(Duration::from_secs(60), "swap ready", |s| {
            s.reported["appliedVersion"] == v
                && s.reported["model"]["status"] == "ready"
                && s.reported["model"]["name"] == name.as_str()
                && s.reported["model"]["backend"] == backend.as_str()
        });
        let want_sha = edgelens::model::Model::load(&common::model(&name))
            .expect("model")
            .sha256;
        assert_eq!(ready_sha(&h), want_sha);
        h.hub.wait(
            Duration::from_secs(30),
            "messages from the new model",
            |s| {
                s.telemetry[n..]
                    .iter()
                    .filter(|m| model_of(m) == name)
                    .count()
                    >= 3
            },
        );
        let st = h.hub.state.lock().expect("lock");
        let after = &st.telemetry[n..];
        // No frame stall: across the swap, stream time (PTS) moves on by at most a few frame
        // intervals (the sample is 10 fps) between the last old-model message and the first
        // new-model one. A loop back to the file's start (PTS going down) is no gap.
        let first_new = n + after
            .iter()
            .position(|m| model_of(m) == name)
            .expect("a message from the new model");
        let all = &st.telemetry;
        let last_old = all[..first_new]
            .iter()
            .rev()
            .find(|m| model_of(m) != name)
            .expect("a message from the old model before the swap");
        let pts = |m: &(String, Value, Instant)| m.1["frame"]["pts_ms"].as_i64().expect("pts");
        let gap = pts(&all[first_new]) - pts(last_old);
        eprintln!("swap to {name} on {backend}: {gap} ms of stream time between models");
        // Frames in which a model finds nobody send nothing, so a gap of a few frames is the
        // scene, not a stall (seen: 300 ms on the TF swap); a load of 0.1-2 s blocking the
        // stream would show as far more.
        assert!(
            gap <= 500,
            "swap to {name}: {gap} ms of stream time without a message"
        );
        drop(st);
    }
    assert_eq!(ready_sha(&h), first_sha);
}

#[test]
fn sas_token_verifies_and_is_renewed_before_expiry() {
    let h = Harness::start(
        initial_desired(),
        &[("EDGELENS_SAS_TTL_SECS", "4"), ("RUST_LOG", "trace")],
        &[],
    );
    h.hub
        .wait(Duration::from_secs(30), "first connect", |s| s.gets >= 1);
    // 80% of a 4 s token: the module reconnects with a fresh token about every 3.2 s.
    h.hub.wait(
        Duration::from_secs(30),
        "reconnects with fresh tokens",
        |s| s.gets >= 3,
    );
    let signed = h.workload.signed.lock().expect("lock").clone();
    assert!(signed.len() >= 3, "{signed:?}");
    let sr = edgelens::edgehub::sas::resource(HUB, DEVICE, MODULE);
    let mut expiries = Vec::new();
    for data in &signed {
        let (res, se) = data.split_once('\n').expect("resource\\nexpiry");
        assert_eq!(res, sr);
        expiries.push(se.parse::<u64>().expect("expiry"));
    }
    assert!(expiries.windows(2).all(|w| w[1] >= w[0]));
    assert!(
        expiries.last() > expiries.first(),
        "tokens were not renewed: {expiries:?}"
    );
    // Tokens reach only the broker: never the log, even at trace level.
    let log = h.module.log();
    assert!(!log.contains("SharedAccessSignature"), "token in log");
    assert!(!log.contains(&h.workload.key_b64), "key in log");
    for data in &signed {
        let sig = edgelens::edgehub::sas::sign_locally(&h.workload.key_b64, data).expect("sign");
        assert!(
            !log.contains(&sig) && !log.contains(urlencoding::encode(&sig).as_ref()),
            "signature in log"
        );
    }
}

#[test]
fn sas_token_checked_by_a_broker_auth_hook() {
    // rumqttd in-process with TLS and an auth hook: the CONNECT password itself is verified.
    let ca = TestCa::new();
    let workload = WorkloadServer::start(&ca.ca_pem);
    let port = common::free_port();
    let seen: Connects = Default::default();
    let config_toml = format!(
        r#"id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10
[v4.1]
name = "edgehub"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.tls]
certpath = "{}"
keypath = "{}"
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#,
        ca.path("server.pem").display(),
        ca.path("server.key").display()
    );
    let mut config: rumqttd::Config = toml::from_str(&config_toml).expect("rumqttd config");
    let log = seen.clone();
    let verify_key = workload.key_b64.clone();
    if let Some(server) = config.v4.as_mut().and_then(|v| v.get_mut("1")) {
        server.connections.external_auth = Some(std::sync::Arc::new(
            move |client_id: String, user: String, pass: String| {
                let check = verify_token(&verify_key, &pass);
                let ok = check.is_ok();
                log.lock().expect("lock").push((client_id, user, check));
                ok
            },
        ));
    }
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        let _ = broker.start();
    });
    assert!(common::wait_for_port(port, Duration::from_secs(10)));
    let _module = Module::start(&workload, port, &[("EDGELENS_SAS_TTL_SECS", "3")], &[]);
    let until = Instant::now() + Duration::from_secs(30);
    while seen.lock().expect("lock").is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    // rumqttd 0.19 panics when a client id reconnects (its will-handler map), so only the
    // first CONNECT is meaningful here; renewal is checked against mosquitto above.
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty(), "the module never connected");
    let (client_id, user, check) = &seen[0];
    assert_eq!(client_id, &format!("{DEVICE}/{MODULE}"));
    assert_eq!(
        user,
        &format!("{HUB}/{DEVICE}/{MODULE}/?api-version=2018-06-30")
    );
    let se = check
        .clone()
        .expect("CONNECT password verifies against the workload key");
    eprintln!("rumqttd auth hook verified the CONNECT SAS token (expiry {se})");
}

/// A scratch model folder for failure cases, built from a bundled one.
fn broken_model(edit: impl Fn(&mut toml::Table), truncate: bool) -> tempfile::TempDir {
    let dir = common::scratch_model("ssdlite-person", edit);
    if truncate {
        let onnx = dir.path().join("ssdlite-person.onnx");
        let bytes = std::fs::read(&onnx).expect("onnx");
        std::fs::remove_file(&onnx).expect("unlink");
        std::fs::write(&onnx, &bytes[..bytes.len() / 3]).expect("write");
    }
    dir
}

/// The patch that takes every field `patch` set back to its value in `initial` (or removes it).
fn undo(patch: &Value, initial: &Value) -> Value {
    let Some(fields) = patch.as_object() else {
        return Value::Null;
    };
    let back = fields.iter().map(|(k, v)| {
        let was = initial.get(k);
        let value = match (v.is_object(), was) {
            (true, Some(w)) if w.is_object() => undo(v, w),
            (_, Some(w)) => w.clone(),
            (_, None) => Value::Null,
        };
        (k.clone(), value)
    });
    Value::Object(back.collect())
}

#[test]
fn malformed_desired_patches_leave_the_running_config_alone() {
    let h = Harness::start(initial_desired(), &[], &[]);
    h.hub.wait(Duration::from_secs(30), "ready", |s| {
        s.reported["model"]["status"] == "ready" && s.telemetry.len() >= 3
    });
    let good_sha = ready_sha(&h);
    let good_config = h.hub.reported()["config"].clone();

    let truncated = broken_model(
        |t| {
            t.remove("sha256");
        },
        true,
    );
    let wrong_input = broken_model(
        |t| {
            t["input"]["width"] = toml::Value::Integer(320);
        },
        false,
    );
    let unknown_decoder = broken_model(
        |t| {
            t["decoder"]["kind"] = toml::Value::String("detr".into());
        },
        false,
    );
    let closed = common::free_port();
    let zeros = "0".repeat(64);
    let archive = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(archive.path(), b"not really a tarball").expect("write");
    let huge = "x".repeat(100_000);
    let many: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();

    // (patch, expected outcome): "rejected" = validation; "failed" = the model load fails.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": {"name": 5}}), "rejected"),
        (
            json!({"model": {"name": "ssdlite-person", "backend": "openvino"}}),
            "rejected",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "threads": 0}}),
            "rejected",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "threads": 1000}}),
            "rejected",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "threads": "two"}}),
            "rejected",
        ),
        (
            json!({"model": {"uri": "ftp://127.0.0.1/m.tar"}}),
            "rejected",
        ),
        (
            json!({"model": {"uri": format!("https://127.0.0.1:{closed}/m.tar.gz")}}),
            "rejected",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "sha256": "xyz"}}),
            "rejected",
        ),
        (
            json!({"model": {"name": null, "backend": "ort"}}),
            "rejected",
        ),
        (json!({"model": {"name": "../../etc/passwd"}}), "rejected"),
        (json!({"model": {"name": huge.clone()}}), "rejected"),
        (
            json!({"model": {"name": "ssdlite-person", "gpu": true}}),
            "rejected",
        ),
        (json!({"detection": {"minConfidence": -0.1}}), "rejected"),
        (json!({"detection": {"minConfidence": 1.5}}), "rejected"),
        (json!({"detection": {"minConfidence": "high"}}), "rejected"),
        (json!({"detection": {"classes": "person"}}), "rejected"),
        (json!({"detection": {"classes": [""]}}), "rejected"),
        (json!({"detection": {"classes": many}}), "rejected"),
        (json!({"source": {"maxFps": -1}}), "rejected"),
        (json!({"source": {"maxFps": 0}}), "rejected"),
        (
            json!({"source": {"uri": "webcam-that-is-not-a-preset"}}),
            "rejected",
        ),
        (
            json!({"source": {"uri": "/nonexistent/video.mp4"}}),
            "rejected",
        ),
        (json!({"source": {"uri": huge}}), "rejected"),
        (json!({"output": {"name": ""}}), "rejected"),
        (json!({"output": {"name": "has space"}}), "rejected"),
        (json!({"outputs": {"name": "typo"}}), "rejected"),
        (json!({"model": {"name": "no-such-model"}}), "failed"),
        (
            json!({"model": {"name": "m", "uri": "file:///nonexistent/model.tar.gz"}}),
            "failed",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "sha256": zeros.clone()}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("https://127.0.0.1:{closed}/m.tar.gz"), "sha256": zeros.clone()}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("file://{}", archive.path().display()), "sha256": zeros.clone()}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("file://{}", archive.path().display())}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("file://{}", truncated.path().display())}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("file://{}", wrong_input.path().display())}}),
            "failed",
        ),
        (
            json!({"model": {"name": "m", "uri": format!("file://{}", unknown_decoder.path().display())}}),
            "failed",
        ),
        (
            json!({"model": {"name": "ssdlite-person", "backend": "tensorflow"}}),
            "failed",
        ),
    ];
    let mut table = Vec::new();
    for (patch, expect) in cases {
        let shown = {
            let s = patch.to_string();
            if s.len() > 90 {
                format!("{}...", &s[..87])
            } else {
                s
            }
        };
        let v = h.hub.patch_desired(patch.clone());
        let reason = if expect == "rejected" {
            h.hub.wait(Duration::from_secs(20), "rejection", |s| {
                s.reported["lastDesired"]["version"] == v
                    && s.reported["lastDesired"]["status"] == "rejected"
            });
            h.hub.reported()["lastDesired"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        } else {
            h.hub.wait(Duration::from_secs(30), "model failure", |s| {
                s.reported["appliedVersion"] == v && s.reported["model"]["status"] == "failed"
            });
            let r = h.hub.reported()["model"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            r
        };
        // The hub keeps every patch in desired, accepted or not (and so does the module): undo
        // this one before the next case, as an operator would.
        let back = h.hub.patch_desired(undo(&patch, &initial_desired()));
        h.hub.wait(Duration::from_secs(30), "undone", |s| {
            s.reported["appliedVersion"] == back && s.reported["model"]["status"] == "ready"
        });
        assert!(!reason.is_empty(), "{shown}: no reason reported");
        // The old model and config keep running.
        assert_eq!(ready_sha(&h), good_sha, "{shown}");
        let reported = h.hub.reported();
        assert_eq!(
            reported["config"]["model"]["name"], good_config["model"]["name"],
            "{shown}"
        );
        let n = h.hub.telemetry_count();
        h.hub
            .wait(Duration::from_secs(10), "telemetry keeps flowing", |s| {
                s.telemetry.len() > n
            });
        let last = h
            .hub
            .state
            .lock()
            .expect("lock")
            .telemetry
            .last()
            .cloned()
            .expect("telemetry");
        assert_eq!(last.1["model"]["name"], "ssdlite-person", "{shown}");
        table.push(format!(
            "{expect:>8} | {shown} | {}",
            reason.chars().take(140).collect::<String>()
        ));
    }
    // Raw bytes that are not JSON at all.
    let v = h.hub.patch_raw(b"{not json");
    h.hub
        .wait(Duration::from_secs(20), "non-JSON rejection", |s| {
            s.reported["lastDesired"]["version"] == v
        });
    table.push(format!(
        "rejected | {{not json | {}",
        h.hub.reported()["lastDesired"]["reason"]
    ));
    assert_eq!(ready_sha(&h), good_sha);
    eprintln!("{} malformed patches:\n{}", table.len(), table.join("\n"));
}
