//! Snapshots off the inference thread. The tracking stage decides on the inference thread
//! which frame is a track's new best picture (microseconds) and knows the snapshot's name
//! at once (`<source>/<date>/<track-id>.jpg`, or its blob name), so the event can carry it.
//! Building the picture and encoding the JPEG (p99 ~23 ms on the 2-core box) happen here, on
//! a writer thread behind a bounded queue: when the queue is full the snapshot is dropped
//! and counted, and the frame goes on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, Sender, TrySendError};
use serde::Serialize;

use crate::defaults;
use crate::engine::Detection;
use crate::ingest::Frame;
use crate::snapshot::{store, Snapshotter, UploadStatus, Uploader};

/// Snapshot and upload status, as reported in the twin's `stats.snapshots` and by getStats.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// JPEGs written.
    pub written: u64,
    /// JPEGs that could not be written (disk full, permissions): see `lastError`.
    pub write_failed: u64,
    /// Snapshots dropped because the writer was busy (queue full).
    pub dropped: u64,
    /// The last write error, redacted.
    pub last_error: Option<String>,
    /// Uploads (pending, uploaded, failed attempts, state, last error); absent when no
    /// connection string is set.
    pub upload: Option<UploadStatus>,
}

/// Shared between the writer thread and whoever reports (pipeline stats).
#[derive(Debug, Default)]
pub struct SnapshotStatusCell {
    local: Mutex<SnapshotStatus>,
    dropped: AtomicU64,
    uploader: Option<Weak<Uploader>>,
}

impl SnapshotStatusCell {
    /// The status now; upload figures are read live from the uploader while it runs.
    pub fn get(&self) -> SnapshotStatus {
        let mut s = self.local.lock().map(|s| s.clone()).unwrap_or_default();
        s.dropped = self.dropped.load(Ordering::Relaxed);
        if let Some(up) = self.uploader.as_ref().and_then(Weak::upgrade) {
            s.upload = Some(up.status());
        }
        if let Some(u) = s.upload.as_mut() {
            u.last_error = u.last_error.as_deref().map(crate::redact::text);
        }
        s
    }

    fn record(&self, result: Result<(), String>, upload: Option<UploadStatus>) {
        if let Ok(mut s) = self.local.lock() {
            match result {
                Ok(()) => s.written += 1,
                Err(e) => {
                    s.write_failed += 1;
                    s.last_error = Some(crate::redact::text(&e));
                }
            }
            if upload.is_some() {
                s.upload = upload;
            }
        }
    }
}

struct Job {
    source: String,
    track_id: String,
    when: DateTime<Utc>,
    frame: Frame,
    detection: Detection,
}

pub struct SnapshotStage {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<SnapshotStatusCell>,
    /// `blob:<container>/` when uploading, else empty: what a reference starts with.
    reference: Box<dyn Fn(&str) -> String + Send>,
}

impl SnapshotStage {
    /// Starts the writer thread, which owns the snapshotter (store, uploader, retention).
    pub fn start(snapshotter: Snapshotter) -> std::io::Result<Self> {
        let status = Arc::new(SnapshotStatusCell {
            uploader: snapshotter.uploader(),
            ..Default::default()
        });
        let blob = snapshotter.reference_for("");
        let reference = Box::new(move |rel: &str| format!("{blob}{rel}"));
        let (tx, rx) = bounded::<Job>(defaults::SNAPSHOT_WRITE_QUEUE);
        let cell = status.clone();
        let mut snap = snapshotter;
        let thread = std::thread::Builder::new()
            .name("snapshot-write".into())
            .spawn(move || {
                for job in rx {
                    let r = write(&mut snap, &job);
                    if let Err(e) = &r {
                        tracing::warn!(error = %e, track = %job.track_id, "snapshot not written");
                    }
                    cell.record(r, snap.upload_status());
                }
            })?;
        Ok(SnapshotStage {
            tx: Some(tx),
            thread: Some(thread),
            status,
            reference,
        })
    }

    pub fn status(&self) -> Arc<SnapshotStatusCell> {
        self.status.clone()
    }

    /// Hands the frame to the writer; the reference the event should carry, or `None` when
    /// the writer is busy (dropped, counted).
    pub fn offer(
        &self,
        source: &str,
        track_id: &str,
        frame: &Frame,
        detection: &Detection,
    ) -> Option<String> {
        let when = Utc::now();
        let rel = store::snapshot_rel_path(source, track_id, when);
        let job = Job {
            source: source.to_string(),
            track_id: track_id.to_string(),
            when,
            frame: frame.clone(),
            detection: detection.clone(),
        };
        match self.tx.as_ref()?.try_send(job) {
            Ok(()) => Some((self.reference)(&rel)),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.status.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for SnapshotStage {
    /// Writes what is queued (at most `SNAPSHOT_WRITE_QUEUE` pictures), so the files the
    /// last events named exist when the pipeline has stopped.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write(snap: &mut Snapshotter, job: &Job) -> Result<(), String> {
    let picture = super::scene_stage::frame_picture(&job.frame)
        .ok_or_else(|| "frame buffer does not match its geometry".to_string())?;
    snap.write(
        &job.source,
        &job.track_id,
        job.when,
        &picture,
        &job.detection,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BBox;
    use crate::snapshot::{Retention, SnapshotStore};

    fn frame() -> Frame {
        Frame {
            pixels: vec![100; 32 * 32 * 3],
            ..Frame::blank((32, 32), 64, 32)
        }
    }

    fn det() -> Detection {
        Detection {
            label: "person".into(),
            class_id: 1,
            confidence: 0.9,
            bbox: BBox {
                l: 0.3,
                t: 0.2,
                w: 0.2,
                h: 0.5,
            },
        }
    }

    #[test]
    fn the_writer_writes_what_the_reference_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path(), Retention::default(), false).unwrap();
        let stage = SnapshotStage::start(Snapshotter::new(store, None)).unwrap();
        let status = stage.status();
        let reference = stage.offer("cam", "t-1", &frame(), &det()).unwrap();
        assert!(reference.starts_with("cam/") && reference.ends_with("/t-1.jpg"));
        drop(stage); // joins the writer: queued pictures are written first
        let img = image::open(dir.path().join(&reference)).unwrap();
        assert_eq!(
            img.width(),
            64,
            "the original aspect, not the model's square"
        );
        let s = status.get();
        assert_eq!((s.written, s.write_failed, s.dropped), (1, 0, 0));
        assert!(s.upload.is_none());
    }

    #[test]
    fn write_errors_are_counted_and_redacted() {
        let cell = SnapshotStatusCell::default();
        cell.record(Err("cannot reach https://h/c?sig=SECRET".into()), None);
        cell.record(Ok(()), None);
        let s = cell.get();
        assert_eq!((s.written, s.write_failed), (1, 1));
        let e = s.last_error.unwrap();
        assert!(!e.contains("SECRET") && e.contains("https://h/c"), "{e}");
    }
}
