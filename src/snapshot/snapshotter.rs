//! One object for the pipeline: offer each tracked detection, get back a snapshot reference
//! when it became the track's best picture. Combines [`BestSnapshots`], [`SnapshotStore`] and,
//! when a connection string is set, the [`Uploader`]; applies retention now and then.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};
use image::RgbImage;

use super::{
    BestSnapshots, BlobConfig, ConnectionString, ContainerName, Retention, SnapshotError,
    SnapshotStore, UploadStatus, Uploader, UploaderConfig,
};
use crate::defaults::SNAPSHOT_RETENTION_EVERY;
use crate::engine::Detection;

/// A written snapshot as an event refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// Relative to the snapshot root: `<source>/<date>/<track-id>.jpg`.
    pub rel_path: String,
    pub crop_rel_path: Option<String>,
    /// What the event carries: `blob:<container>/<rel_path>` when queued for upload,
    /// else `rel_path`.
    pub reference: String,
}

/// Settings for [`Snapshotter::open`].
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    pub root: PathBuf,
    pub retention: Retention,
    pub crop: bool,
    /// The blob container (from the twin); used only when the connection string env var is set.
    pub container: String,
}

#[derive(Debug)]
pub struct Snapshotter {
    best: BestSnapshots,
    store: SnapshotStore,
    uploader: Option<Arc<Uploader>>,
    last_retention: Option<Instant>,
}

impl Snapshotter {
    pub fn new(store: SnapshotStore, uploader: Option<Uploader>) -> Self {
        Self {
            best: BestSnapshots::new(),
            store,
            uploader: uploader.map(Arc::new),
            last_retention: None,
        }
    }

    /// Opens the store and, if `EDGELENS_BLOB_CONNECTION_STRING` is set, starts the uploader
    /// (a bad connection string or container name is an error, never silently ignored).
    pub fn open(settings: &SnapshotSettings) -> Result<Self, SnapshotError> {
        let store = SnapshotStore::open(&settings.root, settings.retention, settings.crop)?;
        let uploader = match ConnectionString::from_env()? {
            Some(connection) => {
                let blob = BlobConfig {
                    connection,
                    container: ContainerName::parse(&settings.container)?,
                };
                Some(Uploader::start(UploaderConfig::new(blob, &settings.root))?)
            }
            None => None,
        };
        Ok(Self::new(store, uploader))
    }

    /// Offers one tracked detection on `frame`. `Some` when it is the track's new best picture
    /// and was written (and queued for upload); the event should then carry `reference`.
    pub fn offer(
        &mut self,
        source: &str,
        track_id: &str,
        when: DateTime<Utc>,
        frame: &RgbImage,
        detection: &Detection,
    ) -> Result<Option<SnapshotRef>, SnapshotError> {
        let (w, h) = frame.dimensions();
        if !self
            .best
            .offer(track_id, detection.confidence, detection.bbox, w, h)
        {
            return Ok(None);
        }
        self.write(source, track_id, when, frame, detection)
            .map(Some)
    }

    /// Writes `frame` as the track's snapshot (no "is it better" check: the caller decided)
    /// and queues its upload.
    pub fn write(
        &mut self,
        source: &str,
        track_id: &str,
        when: DateTime<Utc>,
        frame: &RgbImage,
        detection: &Detection,
    ) -> Result<SnapshotRef, SnapshotError> {
        let saved = self.store.write(source, track_id, when, frame, detection)?;
        let reference = match &self.uploader {
            Some(up) => match up.enqueue(&saved.rel_path) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot not queued for upload");
                    saved.rel_path.clone()
                }
            },
            None => saved.rel_path.clone(),
        };
        self.maybe_enforce_retention();
        Ok(SnapshotRef {
            rel_path: saved.rel_path,
            crop_rel_path: saved.crop_rel_path,
            reference,
        })
    }

    /// What an event carries for the snapshot at `rel_path`, known before it is written:
    /// the blob name when uploads are on, else the local path.
    pub fn reference_for(&self, rel_path: &str) -> String {
        match &self.uploader {
            Some(up) => up.blob_ref(rel_path),
            None => rel_path.to_string(),
        }
    }

    /// The uploader, for live status without owning it (it stops when the snapshotter goes).
    pub fn uploader(&self) -> Option<Weak<Uploader>> {
        self.uploader.as_ref().map(Arc::downgrade)
    }

    /// The track ended.
    pub fn end_track(&mut self, track_id: &str) {
        self.best.forget(track_id);
    }

    /// Source change or model swap: every track starts over.
    pub fn reset(&mut self) {
        self.best.clear();
    }

    /// Applies retention now (pending uploads are kept); returns what was deleted.
    pub fn enforce_retention(&mut self) -> Result<Vec<String>, SnapshotError> {
        self.last_retention = Some(Instant::now());
        let up = self.uploader.as_ref();
        self.store.enforce_retention(SystemTime::now(), &|rel| {
            up.is_some_and(|u| u.is_pending(rel))
        })
    }

    fn maybe_enforce_retention(&mut self) {
        let due = self
            .last_retention
            .is_none_or(|t| t.elapsed() >= SNAPSHOT_RETENTION_EVERY);
        if due {
            if let Err(e) = self.enforce_retention() {
                tracing::warn!(error = %e, "snapshot retention failed");
            }
        }
    }

    pub fn upload_status(&self) -> Option<UploadStatus> {
        self.uploader.as_ref().map(|u| u.status())
    }

    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::BBox;
    use std::time::Duration;

    fn det(score: f32, l: f32) -> Detection {
        Detection {
            label: "person".into(),
            class_id: 0,
            confidence: score,
            bbox: BBox {
                l,
                t: 0.2,
                w: 0.2,
                h: 0.5,
            },
        }
    }

    #[test]
    fn writes_only_new_bests_and_applies_retention() {
        let dir = tempfile::tempdir().unwrap();
        let keep_two = Retention {
            max_files: 2,
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(3600),
        };
        let store = SnapshotStore::open(dir.path(), keep_two, false).unwrap();
        let mut s = Snapshotter::new(store, None);
        let frame = RgbImage::from_pixel(160, 120, image::Rgb([90, 90, 90]));
        let now = Utc::now();
        let first = s
            .offer("cam", "1", now, &frame, &det(0.6, 0.3))
            .unwrap()
            .unwrap();
        assert_eq!(first.reference, first.rel_path);
        assert!(s
            .offer("cam", "1", now, &frame, &det(0.6, 0.3))
            .unwrap()
            .is_none());
        // Edge-touching, even with a higher score: not better.
        assert!(s
            .offer("cam", "1", now, &frame, &det(0.9, 0.0))
            .unwrap()
            .is_none());
        let better = s
            .offer("cam", "1", now, &frame, &det(0.9, 0.3))
            .unwrap()
            .unwrap();
        assert_eq!(better.rel_path, first.rel_path);
        s.end_track("1");
        for t in ["2", "3"] {
            assert!(s
                .offer("cam", t, now, &frame, &det(0.7, 0.3))
                .unwrap()
                .is_some());
        }
        assert_eq!(s.store().scan().unwrap().len(), 3);
        assert_eq!(s.enforce_retention().unwrap().len(), 1);
        assert_eq!(s.store().scan().unwrap().len(), 2);
        assert!(s.upload_status().is_none());
    }
}
