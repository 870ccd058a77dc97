//! Model fetch against hostile archives, servers and folders (issue 9, items 2-6). Every
//! failing case also checks: nothing was written outside the cache, no temp file is left,
//! and the error names the problem without the URL's secret.

mod archives;
mod cache;
mod hostile;
mod server;
mod transfer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgelens::control::config::ModelConfig;
use edgelens::control::model_fetch::{FetchError, FetchSettings, Fetched, Fetcher};

use server::{Route, Server};

/// A scratch root holding `cache/`, `models/` and `src/` (inputs for file:// cases).
pub struct Env {
    pub root: tempfile::TempDir,
    pub server: Server,
}

impl Env {
    #[allow(clippy::new_without_default)] // a fresh scratch root and server each time, not a "default"
    pub fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        for d in ["cache", "models", "src"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        Env {
            root,
            server: Server::start(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// Settings that trust the test CA; everything else at its default.
    pub fn settings(&self) -> FetchSettings {
        FetchSettings {
            extra_roots_pem: self.server.ca_pem.clone().into_bytes(),
            ..Default::default()
        }
    }

    pub fn fetcher(&self, settings: FetchSettings) -> Fetcher {
        Fetcher::new(self.path("models"), self.cache(), settings)
    }

    /// Serves `body` at `path` and fetches it with `settings`.
    pub fn serve_fetch(
        &self,
        path: &str,
        route: Route,
        settings: FetchSettings,
        sha256: Option<String>,
    ) -> Result<Fetched, FetchError> {
        self.server.route(path, route);
        self.fetcher(settings)
            .fetch(&uri_config(&self.server.url(path), sha256))
    }

    /// Only verified entries (`<sha>/{verified, m}`) and an empty `.tmp` in the cache, and
    /// nothing but the three folders at the root.
    pub fn assert_clean(&self) {
        let mut top: Vec<String> = names(self.root.path());
        top.sort();
        assert_eq!(top, ["cache", "models", "src"], "files escaped the cache");
        assert!(
            names(&self.cache().join(".tmp")).is_empty(),
            "temp leftovers: {:?}",
            names(&self.cache().join(".tmp"))
        );
        for name in names(&self.cache()) {
            if name == ".tmp" {
                continue;
            }
            let entry = self.cache().join(&name);
            assert!(
                name.len() == 64 && entry.join("verified").is_file(),
                "stray {name}"
            );
            let mut inner = names(&entry);
            inner.sort();
            assert_eq!(inner, ["m", "verified"], "stray files in {name}");
        }
    }
}

pub fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn uri_config(uri: &str, sha256: Option<String>) -> ModelConfig {
    ModelConfig {
        name: Some("t".into()),
        uri: Some(uri.to_string()),
        sha256,
        backend: None,
        threads: None,
        instances: None,
    }
}

/// The error text, checked for the secret and for the words that explain it.
pub fn error_text(r: Result<Fetched, FetchError>, must: &[&str]) -> String {
    let e = match r {
        Ok(f) => panic!("expected an error, got {f:?}"),
        Err(e) => e.to_string(),
    };
    assert!(!e.contains("SECRET"), "secret leaked: {e}");
    assert!(!e.contains("sig="), "query leaked: {e}");
    for m in must {
        assert!(e.contains(m), "error {e:?} should mention {m:?}");
    }
    e
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_good_archive_is_fetched_then_served_from_the_cache_without_a_download() {
    let env = Env::new();
    let ar = archives::model(b"weights-1", |_| {});
    let sha = archives::sha(&ar);
    let got = env
        .serve_fetch(
            "/m.tar.gz",
            Route::bytes(ar),
            env.settings(),
            Some(sha.clone()),
        )
        .unwrap();
    assert!(!got.cache_hit);
    assert_eq!(got.archive_sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(std::fs::read(got.dir.join("w.onnx")).unwrap(), b"weights-1");
    let model = edgelens::model::Model::load(&got.dir).unwrap();
    assert_eq!(model.labels, ["person"]);
    let requests = env
        .server
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let again = env
        .fetcher(env.settings())
        .fetch(&uri_config(
            &env.server.url("/m.tar.gz"),
            Some(sha.to_uppercase()),
        ))
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.dir, got.dir);
    let after = env
        .server
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(requests, after, "a verified cache hit must not download");
    env.assert_clean();
}

#[test]
fn plain_tar_and_file_archives_work_too() {
    let env = Env::new();
    let tar = archives::plain_tar(b"plain");
    let src = env.path("src/m.tar");
    std::fs::write(&src, &tar).unwrap();
    // Leftovers of the old fixed-name layout are swept.
    std::fs::write(env.cache().join("download-42.part"), b"old").unwrap();
    std::fs::create_dir(env.cache().join(format!("{}.unpack", "0".repeat(64)))).unwrap();
    let got = env
        .fetcher(env.settings())
        .fetch(&uri_config(&format!("file://{}", src.display()), None))
        .unwrap();
    assert_eq!(std::fs::read(got.dir.join("w.onnx")).unwrap(), b"plain");
    assert_eq!(got.archive_sha256, Some(archives::sha(&tar)));
    env.assert_clean();
}

#[test]
fn a_wrong_sha256_is_refused_before_unpacking() {
    let env = Env::new();
    let ar = archives::model(b"w", |_| {});
    let r = env.serve_fetch(
        "/m.tgz",
        Route::bytes(ar),
        env.settings(),
        Some("0".repeat(64)),
    );
    error_text(r, &["sha256 mismatch", "/m.tgz?***"]);
    env.assert_clean();
}

#[test]
fn bundled_names_cannot_climb_out_of_the_models_folder() {
    let env = Env::new();
    let mut cfg = uri_config("x", None);
    cfg.uri = None;
    cfg.name = Some("../cache".into());
    let e = env
        .fetcher(env.settings())
        .fetch(&cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a bundled model name"), "{e}");
}
