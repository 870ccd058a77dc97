//! Fetches a model named by the twin into a local folder: bundled by name, a
//! `file://` folder or archive, or an `https://` archive. Downloads are size-capped
//! and sha256-checked before anything is unpacked.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::config::ModelConfig;
use crate::model::MANIFEST_FILE;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Invalid(String),
    #[error("download of {uri} failed: {message}")]
    Download { uri: String, message: String },
    #[error("download of {uri} exceeds the {limit}-byte cap")]
    TooLarge { uri: String, limit: u64 },
    #[error("sha256 mismatch for {what}: expected {expected}, got {actual}")]
    Sha256 {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

pub struct Fetcher {
    pub models_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub max_bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FetchError + '_ {
    move |e| FetchError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Fetcher {
    /// Returns a folder holding model.toml. The sha256 of a folder source is checked by the caller
    /// against the loaded weights; archives are checked here, before unpacking.
    pub fn fetch(&self, m: &ModelConfig) -> Result<(PathBuf, bool), FetchError> {
        let Some(uri) = &m.uri else {
            let name = m.name.as_deref().unwrap_or_default();
            let dir = self.models_dir.join(name);
            if !dir.join(MANIFEST_FILE).is_file() {
                return Err(FetchError::Invalid(format!(
                    "no bundled model '{name}' in {}",
                    self.models_dir.display()
                )));
            }
            return Ok((dir, false));
        };
        if let Some(path) = uri.strip_prefix("file://") {
            let p = PathBuf::from(path);
            if p.is_dir() {
                if !p.join(MANIFEST_FILE).is_file() {
                    return Err(FetchError::Invalid(format!(
                        "{path} holds no {MANIFEST_FILE}"
                    )));
                }
                return Ok((p, false));
            }
            if !p.is_file() {
                return Err(FetchError::Invalid(format!("{path} does not exist")));
            }
            let meta = std::fs::metadata(&p).map_err(io(&p))?;
            if meta.len() > self.max_bytes {
                return Err(FetchError::TooLarge {
                    uri: uri.clone(),
                    limit: self.max_bytes,
                });
            }
            let file = std::fs::File::open(&p).map_err(io(&p))?;
            return self
                .store_archive(uri, file, m.sha256.as_deref())
                .map(|d| (d, true));
        }
        if uri.starts_with("https://") {
            let client = reqwest::blocking::Client::builder()
                .use_rustls_tls()
                .timeout(std::time::Duration::from_secs(600))
                .build()
                .map_err(|e| FetchError::Download {
                    uri: uri.clone(),
                    message: e.to_string(),
                })?;
            let resp = client
                .get(uri)
                .send()
                .and_then(|r| r.error_for_status())
                .map_err(|e| FetchError::Download {
                    uri: redact(uri),
                    message: e.to_string(),
                })?;
            if resp.content_length().is_some_and(|n| n > self.max_bytes) {
                return Err(FetchError::TooLarge {
                    uri: redact(uri),
                    limit: self.max_bytes,
                });
            }
            return self
                .store_archive(&redact(uri), resp, m.sha256.as_deref())
                .map(|d| (d, true));
        }
        Err(FetchError::Invalid(format!(
            "unsupported model uri '{}'",
            redact(uri)
        )))
    }

    /// Copies an archive to the cache (capped, hashed), checks its sha256, unpacks it.
    fn store_archive(
        &self,
        uri: &str,
        mut src: impl Read,
        sha256: Option<&str>,
    ) -> Result<PathBuf, FetchError> {
        std::fs::create_dir_all(&self.cache_dir).map_err(io(&self.cache_dir))?;
        let part = self
            .cache_dir
            .join(format!("download-{}.part", std::process::id()));
        let mut out = std::fs::File::create(&part).map_err(io(&part))?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = src.read(&mut buf).map_err(|e| FetchError::Download {
                uri: uri.to_string(),
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > self.max_bytes {
                let _ = std::fs::remove_file(&part);
                return Err(FetchError::TooLarge {
                    uri: uri.to_string(),
                    limit: self.max_bytes,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&part))?;
        }
        drop(out);
        let actual = hex::encode(hasher.finalize());
        if let Some(expected) = sha256 {
            if !expected.eq_ignore_ascii_case(&actual) {
                let _ = std::fs::remove_file(&part);
                return Err(FetchError::Sha256 {
                    what: uri.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        let dest = self.cache_dir.join(&actual);
        if !dest.join(MANIFEST_FILE).is_file() {
            let tmp = self.cache_dir.join(format!("{actual}.unpack"));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
            unpack(&part, &tmp).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&tmp);
            })?;
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        }
        let _ = std::fs::remove_file(&part);
        find_manifest(&dest)
    }
}

fn unpack(archive: &Path, into: &Path) -> Result<(), FetchError> {
    let mut head = [0u8; 2];
    let mut f = std::fs::File::open(archive).map_err(io(archive))?;
    let gz = f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b];
    let f = std::fs::File::open(archive).map_err(io(archive))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(reader);
    // tar's unpack_in refuses entries escaping `into` (../, absolute paths).
    let entries = ar
        .entries()
        .map_err(|e| FetchError::Invalid(format!("not a tar archive: {e}")))?;
    let mut count = 0;
    for entry in entries {
        let mut entry = entry.map_err(|e| FetchError::Invalid(format!("corrupt archive: {e}")))?;
        entry
            .unpack_in(into)
            .map_err(|e| FetchError::Invalid(format!("cannot unpack archive: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(FetchError::Invalid("empty archive".into()));
    }
    Ok(())
}

/// model.toml at the top, or inside the archive's single top folder.
fn find_manifest(dir: &Path) -> Result<PathBuf, FetchError> {
    if dir.join(MANIFEST_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match subdirs.as_slice() {
        [one] if one.join(MANIFEST_FILE).is_file() => Ok(one.clone()),
        _ => Err(FetchError::Invalid(format!(
            "the archive holds no {MANIFEST_FILE}"
        ))),
    }
}

/// Strips query strings (SAS tokens in blob URLs) before a URI reaches logs or the twin.
fn redact(uri: &str) -> String {
    uri.split('?').next().unwrap_or(uri).to_string()
}

/// The archive unpacker alone, for the `tar_unpack` fuzz target: `archive` is a .tar or
/// .tar.gz file, unpacked into the existing folder `into`. Not an API.
#[doc(hidden)]
pub fn fuzz_unpack(archive: &Path, into: &Path) -> Result<(), String> {
    unpack(archive, into).map_err(|e| e.to_string())
}
