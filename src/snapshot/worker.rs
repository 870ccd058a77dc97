//! The uploader's background thread: a small single-threaded tokio runtime that creates the
//! container once, then uploads the oldest pending job, backing off on every failure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as BlobPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutOptions, RetryConfig,
};

use super::blob::{shared_key_authorization, BlobConfig};
use super::journal::Job;
use super::upload::{Shared, UploadState, UploaderConfig};
use super::SnapshotError;
use crate::defaults::BLOB_CONNECTION_ENV;

/// The blob API version of our own Create Container request.
const API_VERSION: &str = "2021-08-06";

pub(super) struct Client {
    store: MicrosoftAzure,
    http: reqwest::Client,
    blob: BlobConfig,
}

impl Client {
    pub(super) fn new(config: &UploaderConfig) -> Result<Self, SnapshotError> {
        let conn = &config.blob.connection;
        let options = ClientOptions::new()
            .with_allow_http(conn.is_http())
            .with_timeout(config.timeout)
            .with_connect_timeout(config.timeout.min(Duration::from_secs(5)));
        // One quick retry inside object_store; the real backoff is ours, across restarts.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 1,
            retry_timeout: config.timeout,
        };
        let store = MicrosoftAzureBuilder::new()
            .with_account(&conn.account)
            .with_access_key(conn.key())
            .with_endpoint(conn.blob_endpoint.clone())
            .with_container_name(config.blob.container.as_str())
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| SnapshotError::Blob(redacted(&e.to_string(), conn.key())))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| SnapshotError::Blob(crate::redact::text(&e.to_string())))?;
        Ok(Self {
            store,
            http,
            blob: config.blob.clone(),
        })
    }

    fn endpoint(&self) -> String {
        crate::redact::url(&self.blob.connection.blob_endpoint)
    }

    /// Create Container; "already exists" is success.
    async fn ensure_container(&self) -> Result<(), (UploadState, String)> {
        let conn = &self.blob.connection;
        let url = format!(
            "{}/{}?restype=container",
            conn.blob_endpoint, self.blob.container
        );
        let path = reqwest::Url::parse(&url)
            .map(|u| u.path().to_string())
            .map_err(|e| (UploadState::Failing, format!("bad blob endpoint: {e}")))?;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = [("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)];
        let auth =
            shared_key_authorization(conn, "PUT", &headers, &path, &[("restype", "container")])
                .map_err(|e| (UploadState::AuthFailed, e.to_string()))?;
        let resp = self
            .http
            .put(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", auth)
            .header("Content-Length", "0")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        match resp.status().as_u16() {
            201 | 409 => Ok(()),
            401 | 403 => Err((
                UploadState::AuthFailed,
                self.auth_message(resp.status().as_u16()),
            )),
            code => {
                let body = error_head(resp).await;
                Err((
                    UploadState::Failing,
                    format!(
                        "creating container {} at {} failed with HTTP {code}: {}",
                        self.blob.container,
                        self.endpoint(),
                        redacted(&body, conn.key())
                    ),
                ))
            }
        }
    }

    fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> (UploadState, String) {
        let why = redacted(&chain(e), self.blob.connection.key());
        let msg = format!("blob storage at {} is unreachable: {why}", self.endpoint());
        (UploadState::Unreachable, msg)
    }

    fn auth_message(&self, code: u16) -> String {
        format!(
            "blob storage at {} refused the credentials of account {:?} (HTTP {code}): check \
             AccountName/AccountKey in {BLOB_CONNECTION_ENV}; snapshots are kept and retried",
            self.endpoint(),
            self.blob.connection.account
        )
    }

    async fn put(&self, rel_path: &str, bytes: Vec<u8>) -> Result<(), (UploadState, String)> {
        let path = BlobPath::parse(rel_path)
            .map_err(|e| (UploadState::Failing, format!("bad blob name: {e}")))?;
        let opts = PutOptions {
            attributes: Attributes::from_iter([(Attribute::ContentType, "image/jpeg")]),
            ..Default::default()
        };
        match self.store.put_opts(&path, bytes.into(), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::PermissionDenied { .. })
            | Err(object_store::Error::Unauthenticated { .. }) => {
                Err((UploadState::AuthFailed, self.auth_message(403)))
            }
            Err(e) if is_unreachable(&e) => Err(self.unreachable(&e)),
            Err(e) => {
                let text = redacted(&chain(&e), self.blob.connection.key());
                Err((
                    UploadState::Failing,
                    format!("uploading {rel_path} to {}: {text}", self.endpoint()),
                ))
            }
        }
    }
}

/// The thread body: runs until the uploader is stopped.
pub(super) fn run(shared: Arc<Shared>, client: Client, config: UploaderConfig) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared.record(UploadState::Failing, Some(format!("no async runtime: {e}")));
            return;
        }
    };
    rt.block_on(work(shared, client, config));
}

async fn work(shared: Arc<Shared>, client: Client, config: UploaderConfig) {
    let mut backoff = config.backoff_start;
    let mut container_ready = false;
    while !shared.stop.load(Ordering::SeqCst) {
        let job = shared.next_job();
        if container_ready && job.is_none() {
            // Idle: wait for work (or stop).
            tokio::select! {
                _ = shared.work.notified() => {}
                _ = shared.stop_signal.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        }
        let step = async {
            match job {
                Some(job) if container_ready => upload_one(&shared, &client, &config, &job).await,
                _ => client.ensure_container().await,
            }
        };
        // A request in flight must not hold up shutdown.
        let outcome = tokio::select! {
            o = step => o,
            _ = shared.stop_signal.notified() => break,
        };
        match outcome {
            Ok(()) => {
                container_ready = true;
                shared.record(UploadState::Ok, None);
                backoff = config.backoff_start;
            }
            Err((state, why)) => {
                shared.record(state, Some(why));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.stop_signal.notified() => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
                // The container may have been deleted, or the module replaced: check again.
                container_ready = false;
            }
        }
    }
}

async fn upload_one(
    shared: &Shared,
    client: &Client,
    config: &UploaderConfig,
    job: &Job,
) -> Result<(), (UploadState, String)> {
    let path = config.snapshots_root.join(&job.rel_path);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            client.put(&job.rel_path, bytes).await?;
            shared.finished(job);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(snapshot = %job.rel_path, "snapshot deleted before its upload");
            shared.dropped(job);
            Ok(())
        }
        Err(e) => Err((
            UploadState::Failing,
            format!("reading {}: {e}", path.display()),
        )),
    }
}

/// Connection refused, DNS failure, timeout: anything where no HTTP answer came back.
fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_connect() || r.is_timeout() || r.is_request() {
                return true;
            }
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and all its sources, `a: b: c` (libraries often hide the cause in a source).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

/// Library error text with URLs redacted and, belt and braces, the key itself masked.
fn redacted(text: &str, key: &str) -> String {
    let t = crate::redact::text(text);
    if key.len() >= 8 {
        t.replace(key, "***")
    } else {
        t
    }
}

/// The first 200 characters of an error answer, read without taking in more than 4 KiB: the
/// endpoint may be anything the twin named.
async fn error_head(mut resp: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < 4096 {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c[..c.len().min(4096 - bytes.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes).chars().take(200).collect()
}
