//! The uploader: snapshots queued on disk ([`super::journal`]) and sent to Azure Blob storage
//! (Blob Storage on IoT Edge, Azurite, or the cloud) by a background thread, oldest first,
//! retried with exponential backoff. A blob module that is down loses nothing; a restart
//! resumes the queue; a wrong key is reported once in [`UploadStatus`] and the files stay.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::blob::{blob_ref, BlobConfig, ContainerName};
use super::journal::{is_safe_rel, Job, Journal};
use super::worker;
use super::SnapshotError;
use crate::defaults::{UPLOAD_BACKOFF_MAX, UPLOAD_BACKOFF_START, UPLOAD_QUEUE_MAX, UPLOAD_TIMEOUT};

/// Everything the uploader needs.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    pub blob: BlobConfig,
    /// The snapshot store's root: queued relative paths are read from here.
    pub snapshots_root: PathBuf,
    /// The on-disk queue (default `<snapshots_root>/.upload-queue`, skipped by retention).
    pub queue_dir: PathBuf,
    pub max_queue: usize,
    pub backoff_start: Duration,
    pub backoff_max: Duration,
    /// Deadline of one request.
    pub timeout: Duration,
}

impl UploaderConfig {
    pub fn new(blob: BlobConfig, snapshots_root: impl Into<PathBuf>) -> Self {
        let snapshots_root = snapshots_root.into();
        Self {
            blob,
            queue_dir: snapshots_root.join(".upload-queue"),
            snapshots_root,
            max_queue: UPLOAD_QUEUE_MAX,
            backoff_start: UPLOAD_BACKOFF_START,
            backoff_max: UPLOAD_BACKOFF_MAX,
            timeout: UPLOAD_TIMEOUT,
        }
    }
}

/// How uploads are going, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UploadState {
    /// Nothing tried yet.
    Starting,
    /// The last request succeeded.
    Ok,
    /// The endpoint cannot be reached (module down, wrong host or port).
    Unreachable,
    /// The endpoint refused our credentials: the account name or key is wrong.
    AuthFailed,
    /// Any other error (reported in `last_error`).
    Failing,
}

/// A snapshot of the uploader's state, for logs, metrics and reported properties.
/// `last_error` never holds the account key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadStatus {
    pub state: UploadState,
    pub container: String,
    pub pending: usize,
    pub uploaded: u64,
    pub failed_attempts: u64,
    /// Snapshots not queued because the queue was full (they stay local only).
    pub rejected: u64,
    pub last_error: Option<String>,
}

pub(super) struct Inner {
    pub(super) jobs: HashMap<String, Job>,
    pub(super) status: UploadStatus,
    next_seq: u64,
}

pub(super) struct Shared {
    pub(super) inner: Mutex<Inner>,
    pub(super) journal: Journal,
    pub(super) work: tokio::sync::Notify,
    pub(super) stop_signal: tokio::sync::Notify,
    pub(super) stop: AtomicBool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop uploads: the data is plain counters and jobs.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The oldest pending job.
    pub(super) fn next_job(&self) -> Option<Job> {
        self.lock().jobs.values().min_by_key(|j| j.seq).cloned()
    }

    /// The upload of `job` succeeded: retire it unless the file was replaced meanwhile.
    pub(super) fn finished(&self, job: &Job) {
        let mut inner = self.lock();
        inner.status.uploaded += 1;
        let current = inner.jobs.get(&job.rel_path).map(|j| j.generation);
        if current == Some(job.generation) {
            inner.jobs.remove(&job.rel_path);
            if let Err(e) = self.journal.remove(&job.rel_path) {
                tracing::warn!(error = %e, "upload queue: could not remove a finished job");
            }
        }
        inner.status.pending = inner.jobs.len();
    }

    /// The snapshot file is gone (deleted by hand): nothing left to upload.
    pub(super) fn dropped(&self, job: &Job) {
        let mut inner = self.lock();
        inner.jobs.remove(&job.rel_path);
        let _ = self.journal.remove(&job.rel_path);
        inner.status.pending = inner.jobs.len();
    }

    /// Records the outcome of a request; logs only when the state changes.
    pub(super) fn record(&self, state: UploadState, error: Option<String>) {
        let mut inner = self.lock();
        let changed = inner.status.state != state;
        if error.is_some() {
            inner.status.failed_attempts += 1;
        }
        if changed {
            match &error {
                Some(e) => {
                    tracing::warn!(state = ?state, pending = inner.jobs.len(), "snapshot uploads: {e}")
                }
                None => tracing::info!(state = ?state, "snapshot uploads: blob storage reachable"),
            }
        }
        inner.status.state = state;
        if error.is_some() {
            inner.status.last_error = error;
        }
    }
}

/// Handle on the background uploader; dropping it stops the thread (pending jobs stay on disk).
pub struct Uploader {
    shared: Arc<Shared>,
    container: ContainerName,
    max_queue: usize,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("status", &self.status())
            .finish()
    }
}

impl Uploader {
    /// Loads the queue left by a previous run and starts the background thread.
    /// Fails only on a bad configuration or an unusable queue folder; an unreachable
    /// endpoint is not an error here (it shows in [`Uploader::status`]).
    pub fn start(config: UploaderConfig) -> Result<Self, SnapshotError> {
        let (journal, jobs) = Journal::open(&config.queue_dir)?;
        let client = worker::Client::new(&config)?;
        let next_seq = jobs
            .iter()
            .map(|j| j.seq + 1)
            .max()
            .unwrap_or(0)
            .max(now_seq());
        let container = config.blob.container.clone();
        let status = UploadStatus {
            state: UploadState::Starting,
            container: container.to_string(),
            pending: jobs.len(),
            uploaded: 0,
            failed_attempts: 0,
            rejected: 0,
            last_error: None,
        };
        if !jobs.is_empty() {
            tracing::info!(pending = jobs.len(), "snapshot uploads: resuming the queue");
        }
        let inner = Inner {
            jobs: jobs.into_iter().map(|j| (j.rel_path.clone(), j)).collect(),
            status,
            next_seq,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            journal,
            work: tokio::sync::Notify::new(),
            stop_signal: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            let worker_config = config.clone();
            std::thread::Builder::new()
                .name("snapshot-upload".into())
                .spawn(move || worker::run(shared, client, worker_config))
                .map_err(|e| SnapshotError::io(&config.queue_dir, e))?
        };
        Ok(Self {
            shared,
            container,
            max_queue: config.max_queue,
            thread: Some(thread),
        })
    }

    /// Queues the snapshot at `rel_path` (as returned by the store) and returns the reference
    /// the event should carry, `blob:<container>/<rel_path>`. Queuing a snapshot that is
    /// already pending (a better picture of the same track) uploads the newest file once.
    pub fn enqueue(&self, rel_path: &str) -> Result<String, SnapshotError> {
        if !is_safe_rel(rel_path) {
            return Err(SnapshotError::Blob(format!(
                "refusing to upload {rel_path:?}: not a snapshot path"
            )));
        }
        let mut inner = self.shared.lock();
        let job = match inner.jobs.get(rel_path) {
            Some(j) => Job {
                generation: j.generation + 1,
                ..j.clone()
            },
            None if inner.jobs.len() >= self.max_queue => {
                inner.status.rejected += 1;
                return Err(SnapshotError::QueueFull {
                    max: self.max_queue,
                });
            }
            None => {
                inner.next_seq += 1;
                Job {
                    rel_path: rel_path.to_string(),
                    seq: inner.next_seq,
                    generation: 0,
                }
            }
        };
        self.shared.journal.put(&job)?;
        inner.jobs.insert(job.rel_path.clone(), job);
        inner.status.pending = inner.jobs.len();
        drop(inner);
        self.shared.work.notify_one();
        Ok(self.blob_ref(rel_path))
    }

    /// `blob:<container>/<rel_path>`.
    pub fn blob_ref(&self, rel_path: &str) -> String {
        blob_ref(&self.container, rel_path)
    }

    /// Whether this snapshot still waits for upload (retention must keep it).
    pub fn is_pending(&self, rel_path: &str) -> bool {
        self.shared.lock().jobs.contains_key(rel_path)
    }

    pub fn status(&self) -> UploadStatus {
        self.shared.lock().status.clone()
    }

    /// Waits until nothing is pending; false on timeout. For shutdown and tests.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.shared.lock().jobs.is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shared.lock().jobs.is_empty()
    }

    /// Stops the thread; pending jobs stay on disk for the next start.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.stop_signal.notify_one();
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A queue order that keeps growing across restarts (nanoseconds since the epoch).
fn now_seq() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
