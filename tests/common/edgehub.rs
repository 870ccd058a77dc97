//! A reusable EdgeHub test harness: everything an IoT Edge module talks to, on loopback.
//!
//! - `TestCa`: a CA and a server certificate for 127.0.0.1, generated per test.
//! - `Broker`: a real mosquitto with a TLS listener (the module's EdgeHub) and a plain
//!   one (the hub simulator's), with persistence so a restart keeps subscriptions.
//! - `WorkloadServer`: the IoT Edge workload API on a unix socket, signing with a known key
//!   and serving the CA as trust bundle; it records what it signed.
//! - `HubSimulator`: plays IoT Hub's part: answers twin GETs, pushes desired patches,
//!   records reported patches, telemetry and method responses.
//! - `Module`: the edgelens binary started with the `IOTEDGE_*` environment pointing at all that.
//!
//! Copy this file to test your own module against the same pieces.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{free_port, wait_for_port, ChildGuard};

pub const HUB: &str = "testhub.azure-devices.net";
pub const DEVICE: &str = "edge-device-1";
pub const MODULE: &str = "edgelens";

pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "edgelens test CA");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("server cert");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write");
        TestCa {
            ca_pem: ca.pem(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub struct Broker {
    pub tls_port: u16,
    pub plain_port: u16,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl Broker {
    pub fn start(ca: &TestCa) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_port, plain_port) = (free_port(), free_port());
        let conf = format!(
            "user root\npersistence true\npersistence_location {}/\nallow_anonymous true\n\
             listener {plain_port} 127.0.0.1\n\
             listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            dir.path().display(),
            ca.path("ca.pem").display(),
            ca.path("server.pem").display(),
            ca.path("server.key").display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("conf");
        let mut b = Broker {
            tls_port,
            plain_port,
            dir,
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (run make deps)");
        self.child = Some(ChildGuard(child));
        assert!(
            wait_for_port(self.plain_port, Duration::from_secs(10)),
            "mosquitto did not start"
        );
        assert!(
            wait_for_port(self.tls_port, Duration::from_secs(10)),
            "mosquitto TLS did not start"
        );
    }

    /// SIGTERM: mosquitto saves its sessions and exits, like a broker restart in the field.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.0.id() as i32, libc::SIGTERM) };
            let _ = c.0.wait();
        }
    }
}

pub struct WorkloadServer {
    pub socket: PathBuf,
    pub key_b64: String,
    pub signed: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl WorkloadServer {
    pub fn start(trust_bundle: &str) -> WorkloadServer {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("workload.sock");
        let key_b64 = base64::engine::general_purpose::STANDARD
            .encode(b"edgelens-test-module-key-0123456789");
        let signed = Arc::new(Mutex::new(Vec::new()));
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("bind workload socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let (key, log, bundle) = (key_b64.clone(), signed.clone(), trust_bundle.to_string());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (key, log, bundle) = (key.clone(), log.clone(), bundle.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let (key, log, bundle) = (key.clone(), log.clone(), bundle.clone());
                                async move {
                                    let path = req.uri().path().to_string();
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let (status, out) = if path == "/trust-bundle" {
                                        (200, json!({"certificate": bundle}))
                                    } else if path == format!("/modules/{MODULE}/genid/1/sign") {
                                        let v: Value =
                                            serde_json::from_slice(&body).unwrap_or(Value::Null);
                                        let data = base64::engine::general_purpose::STANDARD
                                            .decode(v["data"].as_str().unwrap_or_default())
                                            .unwrap_or_default();
                                        let data = String::from_utf8_lossy(&data).to_string();
                                        log.lock().expect("lock").push(data.clone());
                                        let digest =
                                            edgelens::edgehub::sas::sign_locally(&key, &data)
                                                .expect("sign");
                                        (200, json!({"digest": digest}))
                                    } else {
                                        (404, json!({"message": "not found"}))
                                    };
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from(out.to_string())))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        WorkloadServer {
            socket,
            key_b64,
            signed,
            _dir: dir,
        }
    }

    /// Checks a SAS token the module presented: signature with the module key, resource, expiry.
    pub fn verify(&self, token: &str) -> Result<u64, String> {
        verify_token(&self.key_b64, token)
    }
}

/// Verifies a module SAS token against the module key; returns its expiry.
pub fn verify_token(key_b64: &str, token: &str) -> Result<u64, String> {
    let (sr, sig, se) = edgelens::edgehub::sas::parse(token).ok_or("unparsable token")?;
    let want_sr = edgelens::edgehub::sas::resource(HUB, DEVICE, MODULE);
    if sr != want_sr {
        return Err(format!("sr {sr} != {want_sr}"));
    }
    let expected = edgelens::edgehub::sas::sign_locally(key_b64, &format!("{sr}\n{se}"))?;
    if expected != sig {
        return Err("signature does not verify".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if se <= now {
        return Err(format!("expired {} s ago", now - se));
    }
    Ok(se)
}

#[derive(Default)]
pub struct HubState {
    pub desired: Value,
    pub reported: Value,
    pub reported_patches: Vec<Value>,
    pub gets: usize,
    /// The next this-many twin GETs are answered badly (odd: status 500, even: garbage).
    pub bad_gets: usize,
    /// (topic, payload, arrival)
    pub telemetry: Vec<(String, Value, Instant)>,
    pub method_responses: Vec<(String, String, Value)>,
}

pub struct HubSimulator {
    pub state: Arc<Mutex<HubState>>,
    client: rumqttc::Client,
}

fn hub_topics() -> [&'static str; 4] {
    [
        "$iothub/twin/GET/#",
        "$iothub/twin/PATCH/properties/reported/#",
        "$iothub/methods/res/#",
        "devices/+/modules/+/messages/events/#",
    ]
}

impl HubSimulator {
    /// Connects to the broker's plain listener with a persistent session; `desired` is the initial twin.
    pub fn start(plain_port: u16, mut desired: Value) -> HubSimulator {
        desired["$version"] = json!(1);
        let state = Arc::new(Mutex::new(HubState {
            desired,
            reported: json!({}),
            ..Default::default()
        }));
        let mut opts = rumqttc::MqttOptions::new("hub-simulator", "127.0.0.1", plain_port);
        opts.set_clean_session(false);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = rumqttc::Client::new(opts, 1000);
        let (st, cl) = (state.clone(), client.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        for t in hub_topics() {
                            let _ = cl.try_subscribe(t, rumqttc::QoS::AtLeastOnce);
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        handle(&st, &cl, &p.topic, &p.payload);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        for _ in hub_topics() {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("hub simulator subscribed");
        }
        HubSimulator { state, client }
    }

    /// Pushes a desired patch with the next version; returns that version.
    pub fn patch_desired(&self, patch: Value) -> i64 {
        let mut st = self.state.lock().expect("lock");
        let version = st.desired["$version"].as_i64().unwrap_or(1) + 1;
        merge(&mut st.desired, &patch);
        st.desired["$version"] = json!(version);
        let mut body = patch;
        if let Some(o) = body.as_object_mut() {
            o.insert("$version".into(), json!(version));
        }
        self.client
            .publish(
                format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
                rumqttc::QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .expect("publish patch");
        version
    }

    /// Pushes raw bytes as a desired patch (for malformed JSON).
    pub fn patch_raw(&self, bytes: &[u8]) -> i64 {
        let mut st = self.state.lock().expect("lock");
        let version = st.desired["$version"].as_i64().unwrap_or(1) + 1;
        st.desired["$version"] = json!(version);
        self.client
            .publish(
                format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
                rumqttc::QoS::AtLeastOnce,
                false,
                bytes.to_vec(),
            )
            .expect("publish patch");
        version
    }

    pub fn call_method(
        &self,
        name: &str,
        payload: Value,
        timeout: Duration,
    ) -> Option<(String, Value)> {
        let rid = format!("m{}", free_port());
        self.client
            .publish(
                format!("$iothub/methods/POST/{name}/?$rid={rid}"),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .expect("publish method");
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some((_, status, body)) = self
                .state
                .lock()
                .expect("lock")
                .method_responses
                .iter()
                .find(|(r, _, _)| *r == rid)
            {
                return Some((status.clone(), body.clone()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until `pred` holds on the state, up to `timeout`.
    pub fn wait(&self, timeout: Duration, what: &str, pred: impl Fn(&HubState) -> bool) {
        let until = Instant::now() + timeout;
        loop {
            if pred(&self.state.lock().expect("lock")) {
                return;
            }
            if Instant::now() > until {
                let st = self.state.lock().expect("lock");
                panic!(
                    "timed out waiting for {what}; reported = {}; {} telemetry messages",
                    st.reported,
                    st.telemetry.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn reported(&self) -> Value {
        self.state.lock().expect("lock").reported.clone()
    }

    pub fn telemetry_count(&self) -> usize {
        self.state.lock().expect("lock").telemetry.len()
    }
}

/// A message property carried in a telemetry topic (`...&source=cam1&...`), url-decoded.
pub fn topic_property(topic: &str, key: &str) -> Option<String> {
    topic
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| urlencoding::decode(v).ok())
        .map(|v| v.into_owned())
}

fn handle(st: &Arc<Mutex<HubState>>, cl: &rumqttc::Client, topic: &str, payload: &[u8]) {
    let rid = topic
        .split_once("?")
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("$rid=")))
        .unwrap_or_default()
        .to_string();
    let mut s = st.lock().expect("lock");
    if topic.starts_with("$iothub/twin/GET/") {
        s.gets += 1;
        let (status, body) = match s.bad_gets {
            0 => (
                200,
                json!({"desired": s.desired, "reported": s.reported}).to_string(),
            ),
            n if n % 2 == 1 => (500, "{}".to_string()),
            _ => (200, "not json {".to_string()),
        };
        s.bad_gets = s.bad_gets.saturating_sub(1);
        let _ = cl.try_publish(
            format!("$iothub/twin/res/{status}/?$rid={rid}"),
            rumqttc::QoS::AtLeastOnce,
            false,
            body,
        );
    } else if topic.starts_with("$iothub/twin/PATCH/properties/reported/") {
        let patch: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        merge(&mut s.reported, &patch);
        s.reported_patches.push(patch);
        let _ = cl.try_publish(
            format!("$iothub/twin/res/204/?$rid={rid}"),
            rumqttc::QoS::AtLeastOnce,
            false,
            Vec::new(),
        );
    } else if let Some(rest) = topic.strip_prefix("$iothub/methods/res/") {
        let status = rest.split('/').next().unwrap_or_default().to_string();
        s.method_responses.push((
            rid,
            status,
            serde_json::from_slice(payload).unwrap_or(Value::Null),
        ));
    } else if topic.contains("/messages/events/") {
        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        s.telemetry.push((topic.to_string(), v, Instant::now()));
    }
}

pub fn merge(target: &mut Value, patch: &Value) {
    edgelens::control::config::merge(target, patch)
}

/// The edgelens module process with an IoT Edge environment.
pub struct Module {
    pub child: ChildGuard,
    pub stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Module {
    pub fn start(
        workload: &WorkloadServer,
        tls_port: u16,
        extra_env: &[(&str, &str)],
        args: &[&str],
    ) -> Module {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr_path = dir.path().join("module.log");
        let log = std::fs::File::create(&stderr_path).expect("log file");
        let mut cmd = super::bin();
        cmd.current_dir(super::root())
            .env(
                "IOTEDGE_WORKLOADURI",
                format!("unix://{}", workload.socket.display()),
            )
            .env("IOTEDGE_AUTHSCHEME", "sasToken")
            .env("IOTEDGE_MODULEGENERATIONID", "1")
            .env("IOTEDGE_IOTHUBHOSTNAME", HUB)
            .env("IOTEDGE_DEVICEID", DEVICE)
            .env("IOTEDGE_MODULEID", MODULE)
            .env("IOTEDGE_GATEWAYHOSTNAME", "127.0.0.1")
            .env("IOTEDGE_APIVERSION", "2019-01-30")
            .env("EDGELENS_EDGEHUB_PORT", tls_port.to_string())
            .env("EDGELENS_CACHE_DIR", dir.path().join("cache"))
            .env("EDGELENS_STATS_INTERVAL_SECS", "2")
            .args(["run", "--realtime"]);
        // Defaults the test's own args may replace (clap rejects an option given twice).
        let defaults = [
            ("--metrics-addr", "off".into()),
            ("--source", super::sample_video()),
            ("--model", super::model("ssdlite-person")),
            // Per-frame telemetry is what most harness tests count; events have their own.
            ("--output-mode", "frames".into()),
        ];
        for (flag, value) in defaults {
            if !args.contains(&flag) {
                cmd.arg(flag).arg(value);
            }
        }
        cmd.args(args).stdout(Stdio::null()).stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn module");
        Module {
            child: ChildGuard(child),
            stderr_path,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn cache_dir(&self) -> &Path {
        self._dir.path()
    }
}

/// Everything together: CA, broker, workload API, hub simulator, module.
pub struct Harness {
    pub ca: TestCa,
    pub broker: Broker,
    pub workload: WorkloadServer,
    pub hub: HubSimulator,
    pub module: Module,
}

impl Harness {
    pub fn start(desired: Value, extra_env: &[(&str, &str)], args: &[&str]) -> Harness {
        Harness::start_with(desired, extra_env, args, |_| {})
    }

    /// Like `start`, with the hub simulator's state prepared before the module connects.
    pub fn start_with(
        desired: Value,
        extra_env: &[(&str, &str)],
        args: &[&str],
        prepare: impl FnOnce(&mut HubState),
    ) -> Harness {
        let ca = TestCa::new();
        let broker = Broker::start(&ca);
        let workload = WorkloadServer::start(&ca.ca_pem);
        let hub = HubSimulator::start(broker.plain_port, desired);
        prepare(&mut hub.state.lock().expect("lock"));
        let module = Module::start(&workload, broker.tls_port, extra_env, args);
        Harness {
            ca,
            broker,
            workload,
            hub,
            module,
        }
    }
}

impl Harness {
    /// Waits until the twin is applied, the model is ready and `messages` telemetry
    /// messages have arrived.
    pub fn wait_ready(&self, messages: usize) {
        self.hub.wait(Duration::from_secs(60), "module ready", |s| {
            s.gets >= 1
                && s.reported["appliedVersion"].is_i64()
                && s.reported["model"]["status"] == "ready"
                && s.telemetry.len() >= messages
        });
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.module.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- module log (last 40 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
