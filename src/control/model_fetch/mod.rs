//! Fetches a model named by the twin into a local folder: bundled by name, a
//! `file://` folder or archive, or an `https://` archive.
//!
//! Everything here is hostile input. An archive is copied into a unique temp file while it is
//! hashed (size-capped, deadline and minimum rate), checked against the twin's sha256, unpacked
//! into a unique temp folder with byte, entry and disk caps (regular files and folders only),
//! and renamed into the cache only when complete, with a verified marker inside. Every error
//! path drops its temp files; every text that may reach a log or the twin is redacted.

mod cache;
mod download;
mod tree;
mod unpack;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::config::ModelConfig;
use crate::defaults as d;
use crate::model::MANIFEST_FILE;

pub use cache::{plan_eviction, EntryInfo};
pub use download::{RateGuard, Stop};
pub use tree::{check_tree, TreeError, TreeStats};
pub use unpack::{check_entry, unpack_cap, EntryKind};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Invalid(String),
    #[error("download of {uri} failed: {message}")]
    Download { uri: String, message: String },
    #[error("{uri} exceeds the {limit}-byte cap; raise --max-model-mb or ship a smaller model")]
    TooLarge { uri: String, limit: u64 },
    #[error("download of {uri} did not finish within {secs} s; raise --model-fetch-timeout or use a faster server")]
    Deadline { uri: String, secs: u64 },
    #[error("download of {uri} too slow: {got} bytes in {secs} s, below the minimum of {min_rate} bytes/s; check the network or the server")]
    TooSlow {
        uri: String,
        got: u64,
        secs: u64,
        min_rate: u64,
    },
    #[error("sha256 mismatch for {what}: the twin says {expected}, the download has {actual}; fix model.sha256 or the archive")]
    Sha256 {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("archive {uri} refused: {message}")]
    Archive { uri: String, message: String },
    #[error(
        "not enough disk space in {path}: {message}; free some space or lower --model-cache-mb"
    )]
    DiskFull { path: PathBuf, message: String },
    #[error("model folder {path} refused: {message}")]
    Folder { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// Paths the running (or loading) model lives in; the cache never evicts an entry holding one.
pub type InUse = Arc<dyn Fn() -> Vec<PathBuf> + Send + Sync>;

/// Limits and trust for fetching. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct FetchSettings {
    /// Largest archive accepted (bytes, `--max-model-mb`).
    pub max_bytes: u64,
    /// Unpacked bytes allowed: `unpack_ratio` × `max_bytes`, and at most
    /// `max_compression` × the archive's size (but `unpack_floor` at least).
    pub unpack_ratio: u64,
    pub max_compression: u64,
    pub unpack_floor: u64,
    pub max_entries: usize,
    /// Whole-download deadline (`--model-fetch-timeout`).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Bytes/s a download must keep up, averaged over `rate_window`; 0 disables.
    pub min_rate: u64,
    pub rate_window: Duration,
    /// Bound on the cache's total unpacked size (`--model-cache-mb`).
    pub cache_max_bytes: u64,
    /// Disk left free for everything else on the device.
    pub disk_reserve: u64,
    /// Extra trusted roots (PEM, may hold several certificates) on top of the webpki roots:
    /// a private blob store's CA, or a test CA.
    pub extra_roots_pem: Vec<u8>,
    /// Called before eviction: what must stay.
    pub in_use: Option<InUse>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            max_bytes: d::MAX_MODEL_MB * 1024 * 1024,
            unpack_ratio: d::UNPACK_RATIO,
            max_compression: d::UNPACK_MAX_COMPRESSION,
            unpack_floor: d::UNPACK_FLOOR_MB * 1024 * 1024,
            max_entries: d::UNPACK_MAX_ENTRIES,
            timeout: d::MODEL_FETCH_TIMEOUT,
            connect_timeout: d::MODEL_FETCH_CONNECT_TIMEOUT,
            min_rate: d::MODEL_FETCH_MIN_RATE,
            rate_window: d::MODEL_FETCH_RATE_WINDOW,
            cache_max_bytes: d::MODEL_CACHE_MB * 1024 * 1024,
            disk_reserve: d::DISK_RESERVE_MB * 1024 * 1024,
            extra_roots_pem: Vec::new(),
            in_use: None,
        }
    }
}

impl std::fmt::Debug for FetchSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchSettings")
            .field("max_bytes", &self.max_bytes)
            .field("max_entries", &self.max_entries)
            .field("timeout", &self.timeout)
            .field("min_rate", &self.min_rate)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .finish_non_exhaustive()
    }
}

/// Where a fetched model lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The folder holding model.toml.
    pub dir: PathBuf,
    /// sha256 of the archive the folder was unpacked from, already checked against the
    /// twin's `sha256` when one was given. `None` for bundled and `file://` folders: the
    /// caller checks the twin's sha256 against the weights instead.
    pub archive_sha256: Option<String>,
    /// The archive was already unpacked in the cache (and re-checked), so nothing was
    /// unpacked. With the twin's sha256 given, nothing was downloaded either; without it, the
    /// archive was downloaded to learn its sha256.
    pub cache_hit: bool,
}

pub struct Fetcher {
    pub models_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub settings: FetchSettings,
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Fetcher {
    pub fn new(models_dir: PathBuf, cache_dir: PathBuf, settings: FetchSettings) -> Fetcher {
        Fetcher {
            models_dir,
            cache_dir,
            settings,
        }
    }

    /// Returns a folder holding model.toml. Archives are sha256-checked here, before
    /// unpacking; the sha256 of a folder source is checked by the caller against the weights.
    pub fn fetch(&self, m: &ModelConfig) -> Result<Fetched, FetchError> {
        let Some(uri) = &m.uri else {
            return self.bundled(m.name.as_deref().unwrap_or_default());
        };
        let shown = crate::redact::url(uri);
        if let Some(path) = uri.strip_prefix("file://") {
            return self.local(Path::new(path), &shown, m.sha256.as_deref());
        }
        if uri.starts_with("https://") {
            let cache = self.cache()?;
            // A verified entry for the twin's sha256 needs no download at all.
            if let Some(dir) = m.sha256.as_deref().and_then(|sha| cache.lookup(sha)) {
                return Ok(Fetched {
                    dir,
                    archive_sha256: m.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                    cache_hit: true,
                });
            }
            let staged = download::download(&self.settings, uri, &shown, &cache)?;
            return self.store(&cache, staged, &shown, m.sha256.as_deref());
        }
        Err(FetchError::Invalid(format!(
            "unsupported model uri '{shown}': use https://, file:// or a bundled model name"
        )))
    }

    fn bundled(&self, name: &str) -> Result<Fetched, FetchError> {
        let mut parts = Path::new(name).components();
        let single = matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none();
        if !single || name.contains(['/', '\\']) {
            return Err(FetchError::Invalid(format!(
                "model name '{name}' is not a bundled model name: use a plain folder name under {}",
                self.models_dir.display()
            )));
        }
        let dir = self.models_dir.join(name);
        if !dir.join(MANIFEST_FILE).is_file() {
            return Err(FetchError::Invalid(format!(
                "no bundled model '{name}' in {}",
                self.models_dir.display()
            )));
        }
        Ok(Fetched {
            dir,
            archive_sha256: None,
            cache_hit: false,
        })
    }

    /// A `file://` folder is used in place once its tree holds only regular files and
    /// folders; a `file://` archive is copied (hashed) into the cache like a download.
    fn local(&self, p: &Path, shown: &str, sha: Option<&str>) -> Result<Fetched, FetchError> {
        let meta = std::fs::metadata(p)
            .map_err(|e| FetchError::Invalid(format!("model uri {shown}: {e}; check the path")))?;
        if meta.is_dir() {
            check_tree(p, self.settings.max_entries).map_err(|e| FetchError::Folder {
                path: p.to_path_buf(),
                message: e.to_string(),
            })?;
            if !p.join(MANIFEST_FILE).is_file() {
                return Err(FetchError::Invalid(format!(
                    "{} holds no {MANIFEST_FILE}",
                    p.display()
                )));
            }
            return Ok(Fetched {
                dir: p.to_path_buf(),
                archive_sha256: None,
                cache_hit: false,
            });
        }
        if !meta.is_file() {
            return Err(FetchError::Invalid(format!(
                "model uri {shown} is neither a folder nor a regular file (device, FIFO or socket)"
            )));
        }
        let cache = self.cache()?;
        let staged = download::copy_local(&self.settings, p, shown, &cache)?;
        self.store(&cache, staged, shown, sha)
    }

    fn cache(&self) -> Result<cache::Cache<'_>, FetchError> {
        cache::Cache::open(&self.cache_dir, &self.settings)
    }

    /// Checks a staged archive's sha256, then serves it from the cache or unpacks it there.
    fn store(
        &self,
        cache: &cache::Cache,
        staged: download::Staged,
        shown: &str,
        expected: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        if let Some(expected) = expected {
            if !expected.eq_ignore_ascii_case(&staged.sha256) {
                return Err(FetchError::Sha256 {
                    what: shown.to_string(),
                    expected: expected.to_string(),
                    actual: staged.sha256.clone(),
                });
            }
        }
        let sha = staged.sha256.clone();
        if let Some(dir) = cache.lookup(&sha) {
            return Ok(Fetched {
                dir,
                archive_sha256: Some(sha),
                cache_hit: true,
            });
        }
        let dir = cache.unpack_into(&staged, shown)?;
        Ok(Fetched {
            dir,
            archive_sha256: Some(sha),
            cache_hit: false,
        })
    }
}

/// The archive unpacker alone, for the `tar_unpack` fuzz target: `archive` is a .tar or
/// .tar.gz file, unpacked into the existing folder `into` under the default caps. Not an API.
#[doc(hidden)]
pub fn fuzz_unpack(archive: &Path, into: &Path) -> Result<(), String> {
    let f = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let limits = unpack::Limits {
        bytes: 64 << 20,
        entries: crate::defaults::UNPACK_MAX_ENTRIES,
        disk_bound: false,
    };
    unpack::unpack(&f, into, &limits)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}
