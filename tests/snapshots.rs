//! Snapshots against Azurite, the official Azure Storage emulator (`make deps` installs it
//! under .deps/azurite): they arrive as valid JPEGs, a killed and restarted Azurite loses
//! none, and a wrong key is reported clearly while the files stay. End to end: a module-mode
//! edgelens (real broker, real sample video) writes snapshots under --snapshots, uploads them
//! to Azurite, names the blob in its events and reports the upload status in the twin.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use edgelens::engine::{BBox, Detection};
use edgelens::snapshot::{
    BlobConfig, ConnectionString, ContainerName, Retention, SnapshotStore, UploadState, Uploader,
    UploaderConfig,
};
use futures_util::TryStreamExt as _;
use object_store::{ObjectStore as _, ObjectStoreExt as _};

/// Azurite's documented development account and its well-known public key.
const ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const WRONG_KEY: &str = "d3Jvbmcga2V5IGZvciB0aGUgZGV2IGFjY291bnQsIG5vdCBhY2NlcHRlZA==";
const CONTAINER: &str = "edgelens-snapshots";

struct Azurite {
    child: Child,
    port: u16,
}

impl Azurite {
    fn start(location: &Path, port: u16) -> Self {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".deps/azurite/node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "{} missing: run `make deps` (scripts/deps.sh installs Azurite)",
            bin.display()
        );
        let child = Command::new("node")
            .arg(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(location)
            .args(["--skipApiVersionCheck", "--silent", "--loose"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.kill();
    }
}

fn connection(port: u16, key: &str) -> ConnectionString {
    ConnectionString::parse(&format!(
        "DefaultEndpointsProtocol=http;BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};\
         AccountName={ACCOUNT};AccountKey={key}"
    ))
    .unwrap()
}

fn uploader_config(port: u16, key: &str, root: &Path) -> UploaderConfig {
    let mut cfg = UploaderConfig::new(
        BlobConfig {
            connection: connection(port, key),
            container: ContainerName::parse(CONTAINER).unwrap(),
        },
        root,
    );
    cfg.backoff_start = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(800);
    cfg.timeout = Duration::from_secs(5);
    cfg
}

/// The test frame (a real frame of samples/vtest.mp4) and a person-sized box on it.
fn frame() -> image::RgbImage {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vtest-frame.png");
    image::open(p).unwrap().to_rgb8()
}

fn detection(i: usize) -> Detection {
    Detection {
        label: "person".into(),
        class_id: 0,
        confidence: 0.9,
        bbox: BBox {
            l: 0.1 + 0.05 * i as f32,
            t: 0.2,
            w: 0.1,
            h: 0.4,
        },
    }
}

fn write(store: &SnapshotStore, track: &str, i: usize) -> String {
    let when = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
    store
        .write("cam/../1", track, when, &frame(), &detection(i))
        .unwrap()
        .rel_path
}

/// Lists (name, bytes) of every blob in the container, with the right key.
fn list_blobs(port: u16) -> Vec<(String, Vec<u8>)> {
    let conn = connection(port, DEV_KEY);
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(ACCOUNT)
        .with_access_key(DEV_KEY)
        .with_endpoint(conn.blob_endpoint.clone())
        .with_container_name(CONTAINER)
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metas: Vec<_> = match store.list(None).try_collect().await {
            Ok(m) => m,
            Err(e) if e.to_string().contains("ContainerNotFound") => Vec::new(),
            Err(e) => panic!("listing blobs: {e}"),
        };
        let mut out = Vec::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.push((m.location.to_string(), bytes.to_vec()));
        }
        out.sort();
        out
    })
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn snapshots_arrive_in_azurite_as_valid_jpegs() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _azurite = Azurite::start(&tmp.path().join("azurite"), port);
    let root = tmp.path().join("snapshots");
    let store = SnapshotStore::open(&root, Retention::default(), true).unwrap();
    let up = Uploader::start(uploader_config(port, DEV_KEY, &root)).unwrap();
    let mut refs = Vec::new();
    for (i, track) in ["100-1", "100-2", "../../evil"].iter().enumerate() {
        let rel = write(&store, track, i);
        refs.push((rel.clone(), up.enqueue(&rel).unwrap()));
    }
    assert!(
        up.wait_idle(Duration::from_secs(60)),
        "status: {:?}",
        up.status()
    );
    let status = up.status();
    assert_eq!(status.state, UploadState::Ok, "{status:?}");
    assert_eq!((status.uploaded, status.pending), (3, 0));
    let blobs = list_blobs(port);
    assert_eq!(
        blobs.len(),
        3,
        "{:?}",
        blobs.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    let (fw, fh) = frame().dimensions();
    for (rel, blob_ref) in &refs {
        assert_eq!(blob_ref, &format!("blob:{CONTAINER}/{rel}"));
        let (_, bytes) = blobs
            .iter()
            .find(|(n, _)| n == rel)
            .expect("blob named after the snapshot");
        assert_eq!(
            image::guess_format(bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
        let img = image::load_from_memory(bytes).unwrap();
        assert_eq!((img.width(), img.height()), (fw, fh));
        assert_eq!(bytes, &std::fs::read(root.join(rel)).unwrap());
    }
}

#[test]
fn killed_and_restarted_azurite_loses_none() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let location = tmp.path().join("azurite");
    let mut azurite = Azurite::start(&location, port);
    let root = tmp.path().join("snapshots");
    let store = SnapshotStore::open(&root, Retention::default(), false).unwrap();
    let up = Uploader::start(uploader_config(port, DEV_KEY, &root)).unwrap();
    let mut all: Vec<String> = (0..2).map(|i| write(&store, &format!("t{i}"), i)).collect();
    for rel in &all {
        up.enqueue(rel).unwrap();
    }
    assert!(up.wait_idle(Duration::from_secs(60)), "{:?}", up.status());
    // Azurite keeps its blob index in memory and saves it every few seconds, so a SIGKILL may
    // lose blobs it had already acknowledged: those are checked here, before the kill.
    let before: Vec<String> = list_blobs(port).into_iter().map(|b| b.0).collect();
    assert_eq!(before.len(), 2, "{before:?}");

    azurite.kill();
    for i in 2..7 {
        let rel = write(&store, &format!("t{i}"), i);
        up.enqueue(&rel).unwrap();
        all.push(rel);
    }
    wait_for("the uploader to notice", Duration::from_secs(30), || {
        up.status().state == UploadState::Unreachable
    });
    // A better picture of a pending track replaces the file; the newest one must arrive.
    let replaced = write(&store, "t2", 6);
    up.enqueue(&replaced).unwrap();
    assert_eq!(up.status().pending, 5);
    assert!(up.status().last_error.unwrap().contains("unreachable"));

    // The process restarts while the module is still down: the queue comes back from disk.
    up.shutdown();
    let up = Uploader::start(uploader_config(port, DEV_KEY, &root)).unwrap();
    assert_eq!(up.status().pending, 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        up.status().pending,
        5,
        "nothing may be dropped while the module is down"
    );

    let _azurite = Azurite::start(&location, azurite.port);
    assert!(up.wait_idle(Duration::from_secs(90)), "{:?}", up.status());
    let blobs = list_blobs(port);
    let mut names: Vec<String> = blobs.iter().map(|b| b.0.clone()).chain(before).collect();
    names.sort();
    names.dedup();
    all.sort();
    assert_eq!(
        names, all,
        "every snapshot arrived, before or after the kill"
    );
    for (name, bytes) in &blobs {
        assert_eq!(
            bytes,
            &std::fs::read(root.join(name)).unwrap(),
            "{name} is not the newest file"
        );
    }
}

#[test]
fn wrong_key_is_reported_and_files_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _azurite = Azurite::start(&tmp.path().join("azurite"), port);
    let root = tmp.path().join("snapshots");
    let keep_none = Retention {
        max_files: 0,
        max_bytes: 0,
        max_age: Duration::ZERO,
    };
    let store = SnapshotStore::open(&root, keep_none, false).unwrap();
    let up = Uploader::start(uploader_config(port, WRONG_KEY, &root)).unwrap();
    let rels: Vec<String> = (0..2).map(|i| write(&store, &format!("w{i}"), i)).collect();
    for rel in &rels {
        up.enqueue(rel).unwrap();
    }
    wait_for("an auth error", Duration::from_secs(30), || {
        up.status().state == UploadState::AuthFailed
    });
    let status = up.status();
    let err = status.last_error.clone().unwrap();
    assert!(
        err.contains("refused the credentials") && err.contains("EDGELENS_BLOB_CONNECTION_STRING"),
        "{err}"
    );
    assert!(!err.contains(WRONG_KEY) && !err.contains(DEV_KEY), "{err}");
    assert!(!format!("{up:?}").contains(WRONG_KEY));
    let cfg_debug = format!("{:?}", uploader_config(port, WRONG_KEY, &root));
    assert!(
        !cfg_debug.contains(WRONG_KEY) && cfg_debug.contains("***"),
        "{cfg_debug}"
    );
    assert!(!up.wait_idle(Duration::from_secs(1)));
    assert_eq!(up.status().pending, 2);
    // Retention that would delete everything spares what waits for upload.
    let deleted = store
        .enforce_retention(std::time::SystemTime::now(), &|r| up.is_pending(r))
        .unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    for rel in &rels {
        assert!(root.join(rel).exists());
    }
    assert!(list_blobs(port).is_empty());
    // The queue survives for when the key is fixed.
    let queued: Vec<PathBuf> = std::fs::read_dir(root.join(".upload-queue"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(queued.len(), 2);
}

/// The module end to end: events name `blob:<container>/<path>`, that blob is in Azurite and the
/// file is under --snapshots, and the twin's reported `stats.snapshots` says what was written
/// and uploaded, without the account key.
#[test]
fn module_mode_uploads_snapshots_named_by_its_events() {
    use common::edgehub::Harness;
    use serde_json::{json, Value};
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _azurite = Azurite::start(&tmp.path().join("azurite"), port);
    let snaps = tmp.path().join("snaps");
    let conn = format!(
        "DefaultEndpointsProtocol=http;BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};\
         AccountName={ACCOUNT};AccountKey={DEV_KEY}"
    );
    let h = Harness::start(
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}, "snapshots": {"container": CONTAINER}}),
        &[("EDGELENS_BLOB_CONNECTION_STRING", conn.as_str())],
        &[
            "--output-mode",
            "events",
            "--snapshots",
            snaps.to_str().unwrap(),
        ],
    );
    let prefix = format!("blob:{CONTAINER}/");
    let named = |s: &common::edgehub::HubState| -> Vec<String> {
        s.telemetry
            .iter()
            .flat_map(|(_, body, _)| body["inferences"].as_array().cloned().unwrap_or_default())
            .filter_map(|i| {
                i["event"]["properties"]["snapshot"]
                    .as_str()
                    .map(String::from)
            })
            .filter(|r| r.starts_with(&prefix))
            .collect()
    };
    h.hub.wait(
        Duration::from_secs(120),
        "an event naming a blob, and uploads reported",
        |s| {
            !named(s).is_empty()
                && s.reported["stats"]["snapshots"]["upload"]["uploaded"]
                    .as_u64()
                    .is_some_and(|n| n >= 1)
        },
    );
    let refs = named(&h.hub.state.lock().unwrap());
    let blob = refs[0].strip_prefix(&prefix).unwrap().to_string();
    wait_for("the named blob in Azurite", Duration::from_secs(30), || {
        list_blobs(port).iter().any(|(name, _)| *name == blob)
    });
    let (_, bytes) = list_blobs(port)
        .into_iter()
        .find(|(n, _)| *n == blob)
        .unwrap();
    let img = image::load_from_memory(&bytes).expect("the blob is a JPEG");
    assert!(img.width() > 0);
    assert!(snaps.join(&blob).is_file(), "{blob} not under --snapshots");
    let reported = h.hub.reported();
    let st: &Value = &reported["stats"]["snapshots"];
    assert!(st["written"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["writeFailed"], 0, "{st}");
    assert_eq!(st["upload"]["state"], "ok", "{st}");
    assert_eq!(st["upload"]["container"], CONTAINER, "{st}");
    assert!(st["upload"]["pending"].is_u64(), "{st}");
    assert!(
        !reported.to_string().contains(DEV_KEY),
        "the account key leaked into reported"
    );
    assert!(
        !h.module.log().contains(DEV_KEY),
        "the account key leaked into the log"
    );
}
