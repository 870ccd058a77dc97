//! Stages an archive into a unique temp file in the cache, hashing as it goes: https
//! downloads (size cap, whole-download deadline, minimum rate) and `file://` archives.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::{io, FetchError, FetchSettings};

/// An archive copied into a temp file only this process knows; the file goes away on drop.
pub(super) struct Staged {
    pub file: tempfile::NamedTempFile,
    pub sha256: String,
    pub len: u64,
}

/// Why a transfer was cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Deadline,
    TooSlow { got: u64, secs: u64 },
}

/// Whole-transfer deadline plus a minimum rate, averaged over consecutive windows.
/// Pure: the caller passes the clock in.
#[derive(Debug, Clone)]
pub struct RateGuard {
    start: Instant,
    deadline: Duration,
    min_rate: u64,
    window: Duration,
    mark: (Instant, u64),
}

impl RateGuard {
    pub fn new(start: Instant, deadline: Duration, min_rate: u64, window: Duration) -> Self {
        RateGuard {
            start,
            deadline,
            min_rate,
            window,
            mark: (start, 0),
        }
    }

    /// `total` bytes have arrived by `now`.
    pub fn check(&mut self, now: Instant, total: u64) -> Result<(), Stop> {
        if now.saturating_duration_since(self.start) >= self.deadline {
            return Err(Stop::Deadline);
        }
        let elapsed = now.saturating_duration_since(self.mark.0);
        if self.min_rate > 0 && !self.window.is_zero() && elapsed >= self.window {
            let got = total.saturating_sub(self.mark.1);
            if (got as f64) < self.min_rate as f64 * elapsed.as_secs_f64() {
                return Err(Stop::TooSlow {
                    got,
                    secs: elapsed.as_secs(),
                });
            }
            self.mark = (now, total);
        }
        Ok(())
    }
}

fn stop_error(stop: Stop, s: &FetchSettings, shown: &str) -> FetchError {
    match stop {
        Stop::Deadline => FetchError::Deadline {
            uri: shown.to_string(),
            secs: s.timeout.as_secs(),
        },
        Stop::TooSlow { got, secs } => FetchError::TooSlow {
            uri: shown.to_string(),
            got,
            secs,
            min_rate: s.min_rate,
        },
    }
}

/// reqwest's texts embed the URL with its SAS token: drop the URL, redact the rest, and
/// keep the causes (the top-level text alone says little: "error sending request").
fn reqwest_error(e: reqwest::Error, shown: &str) -> FetchError {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Download {
        uri: shown.to_string(),
        message: crate::redact::text(&message),
    }
}

/// Downloads `uri` (its query may hold a SAS token; only `shown` is ever printed).
pub(super) fn download(
    s: &FetchSettings,
    uri: &str,
    shown: &str,
    cache: &Cache,
) -> Result<Staged, FetchError> {
    let start = Instant::now();
    // reqwest's timeout bounds each read; the guard bounds the whole transfer.
    let per_read = s.timeout.min(s.rate_window.max(Duration::from_secs(1)));
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::limited(5))
        .connect_timeout(s.connect_timeout.min(s.timeout))
        .timeout(per_read);
    if !s.extra_roots_pem.is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(&s.extra_roots_pem).map_err(|e| {
            FetchError::Invalid(format!("extra root certificates are not valid PEM: {e}"))
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().map_err(|e| reqwest_error(e, shown))?;
    let resp = client
        .get(uri)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            if start.elapsed() >= s.timeout {
                return stop_error(Stop::Deadline, s, shown);
            }
            reqwest_error(e, shown)
        })?;
    if resp.content_length().is_some_and(|n| n > s.max_bytes) {
        return Err(FetchError::TooLarge {
            uri: shown.to_string(),
            limit: s.max_bytes,
        });
    }
    let guard = RateGuard::new(start, s.timeout, s.min_rate, s.rate_window);
    stage(resp, s, shown, cache, Some(guard))
}

/// Copies a local archive; opened non-blocking so a FIFO swapped in cannot hang the load.
pub(super) fn copy_local(
    s: &FetchSettings,
    path: &Path,
    shown: &str,
    cache: &Cache,
) -> Result<Staged, FetchError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(FetchError::Invalid(format!(
            "model uri {shown} is not a regular file"
        )));
    }
    if meta.len() > s.max_bytes {
        return Err(FetchError::TooLarge {
            uri: shown.to_string(),
            limit: s.max_bytes,
        });
    }
    stage(file, s, shown, cache, None)
}

/// Copies `src` into a fresh temp file (at most `max_bytes`), hashing the same bytes.
fn stage(
    mut src: impl Read,
    s: &FetchSettings,
    shown: &str,
    cache: &Cache,
    mut guard: Option<RateGuard>,
) -> Result<Staged, FetchError> {
    let mut file = cache.temp_file("download-", ".part")?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if let Some(Err(stop)) = guard.as_mut().map(|g| g.check(Instant::now(), total)) {
                    return Err(stop_error(stop, s, shown));
                }
                return Err(FetchError::Download {
                    uri: shown.to_string(),
                    message: crate::redact::text(&e.to_string()),
                });
            }
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > s.max_bytes {
            return Err(FetchError::TooLarge {
                uri: shown.to_string(),
                limit: s.max_bytes,
            });
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io(file.path()))?;
        if let Some(g) = guard.as_mut() {
            g.check(Instant::now(), total)
                .map_err(|stop| stop_error(stop, s, shown))?;
        }
    }
    file.flush().map_err(io(file.path()))?;
    Ok(Staged {
        file,
        sha256: hex::encode(hasher.finalize()),
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn deadline_cuts_a_steady_transfer() {
        let t0 = Instant::now();
        let mut g = RateGuard::new(t0, secs(10), 0, secs(30));
        assert_eq!(g.check(t0 + secs(9), 1 << 30), Ok(()));
        assert_eq!(g.check(t0 + secs(10), 1 << 30), Err(Stop::Deadline));
    }

    #[test]
    fn rate_is_averaged_over_whole_windows() {
        let t0 = Instant::now();
        let mut g = RateGuard::new(t0, secs(600), 10 * 1024, secs(30));
        // A slow start inside the first window is fine.
        assert_eq!(g.check(t0 + secs(29), 100), Ok(()));
        // 300 KiB in the first 30 s is exactly enough.
        assert_eq!(g.check(t0 + secs(30), 300 * 1024), Ok(()));
        // The next window brings only 1 KiB: cut off.
        assert_eq!(
            g.check(t0 + secs(60), 301 * 1024),
            Err(Stop::TooSlow {
                got: 1024,
                secs: 30
            })
        );
    }

    #[test]
    fn zero_rate_disables_the_rate_check() {
        let t0 = Instant::now();
        let mut g = RateGuard::new(t0, secs(600), 0, secs(30));
        assert_eq!(g.check(t0 + secs(300), 0), Ok(()));
    }
}
