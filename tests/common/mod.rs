//! Shared helpers for integration tests: paths, running the binary, scratch model folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model(name: &str) -> PathBuf {
    root().join("models").join(name)
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgelens"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .expect("the edgelens binary could not be started")
}

/// Asserts a command failed the way users should see failures: non-zero exit, one error line, no panic.
pub fn assert_clean_failure(out: &Output, must_mention: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error line, got: {stderr}"
    );
    for m in must_mention {
        assert!(
            errors[0].to_lowercase().contains(&m.to_lowercase()),
            "error line should mention '{m}': {}",
            errors[0]
        );
    }
    errors[0].to_string()
}

/// A scratch copy of a model folder whose manifest is rewritten by `edit`; weights are linked, not copied.
pub fn scratch_model(src: &str, edit: impl Fn(&mut toml::Table)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src_dir = model(src);
    for entry in std::fs::read_dir(&src_dir).expect("model folder") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name").to_owned();
        if name == "model.toml" {
            continue;
        }
        // Copies, not symlinks: a model folder's files must resolve inside it (issue 9, item 2).
        copy_tree(&p, &dir.path().join(name));
    }
    let text = std::fs::read_to_string(src_dir.join("model.toml")).expect("manifest");
    let mut table: toml::Table = toml::from_str(&text).expect("manifest parses");
    edit(&mut table);
    std::fs::write(
        dir.path().join("model.toml"),
        toml::to_string(&table).expect("toml"),
    )
    .expect("write");
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let p = entry.expect("entry").path();
            copy_tree(&p, &to.join(p.file_name().expect("name")));
        }
    } else {
        std::fs::copy(from, to).expect("copy");
    }
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// A loopback port free now, and never handed out before in this test process: the kernel
/// may give a just-released port again, and two parts of one test (a broker and a metrics
/// server) then bind the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.insert(port) {
            return port;
        }
    }
}

pub fn wait_for_port(port: u16, timeout: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// A child process killed when dropped.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real mosquitto on a free loopback port, with its own config; stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<ChildGuard>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.restart();
        m
    }

    /// (Re)starts on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.dir.path().join("mosquitto.conf");
        // `user root`: started as root, mosquitto would otherwise drop privileges and fail to read its files.
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {} 127.0.0.1\nallow_anonymous true\npersistence false\n",
                self.port
            ),
        )
        .expect("mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto not installed: run `make deps`");
        self.child = Some(ChildGuard(child));
        assert!(
            wait_for_port(self.port, std::time::Duration::from_secs(10)),
            "mosquitto did not start"
        );
    }

    pub fn stop(&mut self) {
        self.child = None;
    }
}

/// (topic, payload) pairs a collector received.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Subscribes to `topic` and collects payloads on a background thread.
pub struct Collector {
    pub messages: Received,
}

impl Collector {
    pub fn subscribe(port: u16, topic: &str) -> Collector {
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut opts =
            rumqttc::MqttOptions::new(format!("collector-{}", free_port()), "127.0.0.1", port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_clean_session(false);
        let (client, mut connection) = rumqttc::Client::new(opts, 100);
        client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .expect("subscribe");
        let sink = messages.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _client = client;
            for ev in connection.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        sink.lock()
                            .expect("lock")
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("collector subscribed");
        Collector { messages }
    }

    pub fn count(&self) -> usize {
        self.messages.lock().expect("lock").len()
    }

    pub fn wait_for(&self, n: usize, timeout: std::time::Duration) -> usize {
        let until = std::time::Instant::now() + timeout;
        while self.count() < n && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.count()
    }
}

pub fn sample_video() -> PathBuf {
    root().join("samples/vtest.mp4")
}
pub mod edgehub;
pub mod hostile;

/// Runs a command that must succeed and parses its stdout as JSON lines.
pub fn json_lines(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Takes a piped child's whole stderr.
pub fn read_stderr(child: &mut ChildGuard) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Loads a bundled model on a backend (1 thread) and detects on a test image.
pub fn detect(model_name: &str, backend: &str, image: &str) -> Vec<edgelens::engine::Detection> {
    detect_at(model_name, backend, image, None)
}

/// `detect` with the model's confidence threshold overridden.
pub fn detect_at(
    model_name: &str,
    backend: &str,
    image: &str,
    min_confidence: Option<f32>,
) -> Vec<edgelens::engine::Detection> {
    let engine = edgelens::engine::Engine::load(
        &model(model_name),
        &edgelens::engine::EngineOptions {
            backend: Some(backend.into()),
            threads: 1,
        },
    )
    .unwrap_or_else(|e| panic!("{model_name} on {backend}: {e}"));
    let img = image::open(data(image)).expect("test image").to_rgb8();
    engine
        .detect_image(
            &img,
            &edgelens::engine::DetectionFilter {
                min_confidence,
                classes: vec![],
            },
        )
        .expect("detect")
        .0
}

/// A detection's box as (x1, y1, x2, y2).
pub fn corners(d: &edgelens::engine::Detection) -> [f32; 4] {
    [d.bbox.l, d.bbox.t, d.bbox.l + d.bbox.w, d.bbox.t + d.bbox.h]
}

/// A gst-rtsp-server camera on 127.0.0.1:`port` serving a live test pattern at `/test`.
pub fn start_rtsp(port: u16) -> ChildGuard {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg(root().join("tests/support/rtsp_server.py"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtsp server (python3-gi, gir1.2-gst-rtsp-server-1.0: run make deps)");
    let mut ready = [0u8; 5];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut ready)
        .expect("rtsp server READY");
    assert_eq!(&ready, b"READY");
    ChildGuard(child)
}

/// `d`'s best-overlapping same-label detection in `others`, as (IoU, |score difference|);
/// `None` when `others` has no detection with that label.
pub fn best_partner(
    d: &edgelens::engine::Detection,
    others: &[edgelens::engine::Detection],
) -> Option<(f32, f32)> {
    others
        .iter()
        .filter(|e| e.label == d.label)
        .map(|e| {
            (
                edgelens::engine::nms::iou(&corners(d), &corners(e)),
                (d.confidence - e.confidence).abs(),
            )
        })
        .max_by(|x, y| x.0.total_cmp(&y.0))
}

/// How close two detections must be to count as the same one.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub min_iou: f32,
    pub max_score_diff: f32,
}

/// Asserts that each detection of `from` that `compare` selects has a partner in `to`
/// within `tol`, and returns how many were compared (callers require at least one).
pub fn assert_partners(
    from: &[edgelens::engine::Detection],
    to: &[edgelens::engine::Detection],
    compare: impl Fn(&edgelens::engine::Detection) -> bool,
    tol: Tolerance,
    what: &str,
) -> usize {
    let mut compared = 0;
    for d in from.iter().filter(|d| compare(d)) {
        let (iou, diff) = best_partner(d, to).unwrap_or((0.0, 1.0));
        assert!(
            iou > tol.min_iou,
            "{what}: best box IoU {iou} for {d:?}\n{from:?}\n{to:?}"
        );
        assert!(
            diff < tol.max_score_diff,
            "{what}: score diff {diff} for {d:?}"
        );
        compared += 1;
    }
    compared
}
