//! Snapshot files: `<root>/<source>/<YYYY-MM-DD>/<track-id>.jpg` (the full frame with the box
//! drawn) and optionally `<track-id>-crop.jpg` (the box alone). Source names and track ids
//! come from outside, so every path component is sanitized and can never leave its folder.
//! A track's file is replaced atomically (temp file in the same folder, then rename), and
//! retention deletes the oldest first but never a snapshot whose upload is pending.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use image::RgbImage;
use sha2::{Digest, Sha256};

use super::SnapshotError;
use crate::defaults::{
    SNAPSHOT_JPEG_QUALITY, SNAPSHOT_MAX_AGE, SNAPSHOT_MAX_FILES, SNAPSHOT_MAX_MB,
};
use crate::engine::Detection;

/// Longest path component we write (bytes), hash suffix included.
const MAX_COMPONENT: usize = 80;
const CROP_SUFFIX: &str = "-crop.jpg";

/// How much the snapshot folder may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_files: usize,
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_files: SNAPSHOT_MAX_FILES,
            max_bytes: SNAPSHOT_MAX_MB * 1024 * 1024,
            max_age: SNAPSHOT_MAX_AGE,
        }
    }
}

/// One written snapshot. `rel_path` uses `/` and is what events and the uploader refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub rel_path: String,
    pub crop_rel_path: Option<String>,
    pub bytes: u64,
}

/// One snapshot found on disk (its crop's bytes counted with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel_path: String,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// A string made safe as one path component: only `[A-Za-z0-9._-]`, never starting with `.`
/// (so never `.` or `..`, never hidden), at most [`MAX_COMPONENT`] bytes. Whenever anything
/// had to change, a hash of the original is appended so that distinct inputs stay distinct.
pub fn sanitize_component(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    let changed = out != raw || out.is_empty() || out.len() > MAX_COMPONENT;
    if changed {
        let digest = hex::encode(&Sha256::digest(raw.as_bytes())[..4]);
        out.truncate(MAX_COMPONENT - 9);
        out.push('-');
        out.push_str(&digest);
    }
    out
}

/// Whether `part` could be a component this module wrote: non-empty, `[A-Za-z0-9._-]` only,
/// not starting with `.`, not longer than a sanitized track id plus `-crop.jpg`.
pub fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= MAX_COMPONENT + CROP_SUFFIX.len()
        && !part.starts_with('.')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `<source>/<YYYY-MM-DD>/<track-id>.jpg`, each part sanitized; the date in UTC.
pub fn snapshot_rel_path(source: &str, track_id: &str, when: DateTime<Utc>) -> String {
    format!(
        "{}/{}/{}.jpg",
        sanitize_component(source),
        when.format("%Y-%m-%d"),
        sanitize_component(track_id)
    )
}

/// Which snapshots to delete, oldest first: past `max_age`, or while there are more than
/// `max_files` or more than `max_bytes`. Pending uploads are skipped (kept) whatever their age.
pub fn plan_retention(
    entries: &[Entry],
    retention: &Retention,
    now: SystemTime,
    is_pending: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then(a.rel_path.cmp(&b.rel_path))
    });
    let mut count = entries.len();
    let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut doomed = Vec::new();
    for e in order {
        let age = now.duration_since(e.modified).unwrap_or_default();
        let over = count > retention.max_files || bytes > retention.max_bytes;
        if (over || age > retention.max_age) && !is_pending(&e.rel_path) {
            doomed.push(e.rel_path.clone());
            count -= 1;
            bytes = bytes.saturating_sub(e.bytes);
        }
    }
    doomed
}

/// The snapshot folder.
#[derive(Debug)]
pub struct SnapshotStore {
    root: PathBuf,
    retention: Retention,
    crop: bool,
    jpeg_quality: u8,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl SnapshotStore {
    /// Creates the root folder if needed. `crop`: also write `<track-id>-crop.jpg`.
    pub fn open(
        root: impl Into<PathBuf>,
        retention: Retention,
        crop: bool,
    ) -> Result<Self, SnapshotError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| SnapshotError::io(&root, e))?;
        Ok(Self {
            root,
            retention,
            crop,
            jpeg_quality: SNAPSHOT_JPEG_QUALITY,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a `rel_path` this store returned.
    pub fn path_of(&self, rel_path: &str) -> PathBuf {
        self.root.join(rel_path)
    }

    /// Writes (or atomically replaces) the track's snapshot: `frame` with `detection`'s box
    /// drawn, and its crop if enabled. `frame` itself is not modified.
    pub fn write(
        &self,
        source: &str,
        track_id: &str,
        when: DateTime<Utc>,
        frame: &RgbImage,
        detection: &Detection,
    ) -> Result<SavedSnapshot, SnapshotError> {
        let rel_path = snapshot_rel_path(source, track_id, when);
        let crop_rel_path = if self.crop {
            let rel = format!("{}{CROP_SUFFIX}", rel_path.trim_end_matches(".jpg"));
            let crop = crop_box(frame, detection);
            self.write_jpeg(&rel, &crop)?;
            Some(rel)
        } else {
            None
        };
        let mut drawn = frame.clone();
        crate::annotate::draw(&mut drawn, std::slice::from_ref(detection));
        let bytes = self.write_jpeg(&rel_path, &drawn)?;
        Ok(SavedSnapshot {
            rel_path,
            crop_rel_path,
            bytes,
        })
    }

    fn write_jpeg(&self, rel: &str, img: &RgbImage) -> Result<u64, SnapshotError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, self.jpeg_quality)
            .encode_image(img)?;
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| SnapshotError::io(dir, e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&buf))
            .and_then(|_| fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(SnapshotError::io(&path, e));
        }
        Ok(buf.len() as u64)
    }

    /// Every snapshot on disk (`<source>/<date>/<name>.jpg`; hidden files are skipped).
    pub fn scan(&self) -> Result<Vec<Entry>, SnapshotError> {
        let mut found: HashMap<String, Entry> = HashMap::new();
        let mut crops = Vec::new();
        for source in visible_children(&self.root)? {
            for date in visible_children(&source)? {
                for file in visible_children(&date)? {
                    let Ok(meta) = fs::metadata(&file) else {
                        continue; // deleted meanwhile
                    };
                    let Ok(rel) = file.strip_prefix(&self.root) else {
                        continue;
                    };
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if !meta.is_file() || !rel.ends_with(".jpg") {
                        continue;
                    }
                    let entry = Entry {
                        rel_path: rel.clone(),
                        bytes: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    };
                    if rel.ends_with(CROP_SUFFIX) {
                        crops.push(entry);
                    } else {
                        found.insert(rel, entry);
                    }
                }
            }
        }
        for crop in crops {
            let main = format!("{}.jpg", crop.rel_path.trim_end_matches(CROP_SUFFIX));
            match found.get_mut(&main) {
                Some(m) => m.bytes += crop.bytes,
                None => {
                    found.insert(crop.rel_path.clone(), crop);
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Applies retention now; returns the snapshots deleted (relative paths).
    pub fn enforce_retention(
        &self,
        now: SystemTime,
        is_pending: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, SnapshotError> {
        let doomed = plan_retention(&self.scan()?, &self.retention, now, is_pending);
        for rel in &doomed {
            let path = self.root.join(rel);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SnapshotError::io(&path, e)),
            }
            if !rel.ends_with(CROP_SUFFIX) {
                let crop = self
                    .root
                    .join(format!("{}{CROP_SUFFIX}", rel.trim_end_matches(".jpg")));
                let _ = fs::remove_file(crop);
            }
            // Empty date and source folders go too; a non-empty one refuses, which is fine.
            if let Some(date_dir) = path.parent() {
                let _ = fs::remove_dir(date_dir);
                if let Some(source_dir) = date_dir.parent() {
                    if source_dir != self.root {
                        let _ = fs::remove_dir(source_dir);
                    }
                }
            }
        }
        Ok(doomed)
    }
}

fn visible_children(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SnapshotError::io(dir, e)),
    };
    Ok(rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect())
}

/// The detection's box cut out of the frame (at least 1×1, clamped to the frame).
fn crop_box(frame: &RgbImage, detection: &Detection) -> RgbImage {
    let (fw, fh) = (frame.width(), frame.height());
    let b = detection.bbox;
    let clamp = |v: f32, max: u32| (v.max(0.0) * max as f32).round().min(max as f32) as u32;
    let x0 = clamp(b.l, fw).min(fw.saturating_sub(1));
    let y0 = clamp(b.t, fh).min(fh.saturating_sub(1));
    let x1 = clamp(b.l + b.w, fw).max(x0 + 1).min(fw);
    let y1 = clamp(b.t + b.h, fh).max(y0 + 1).min(fh);
    image::imageops::crop_imm(frame, x0, y0, x1 - x0, y1 - y0).to_image()
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
