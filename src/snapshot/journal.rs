//! The upload queue on disk: one small JSON file per pending snapshot, written atomically
//! (temp file, fsync, rename), removed once the blob is uploaded. A restart reads the folder
//! back and resumes where it stopped; a file that is not a valid job is removed with a warning.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::is_safe_component;
use super::SnapshotError;

/// Largest job file we read back (a job is ~200 bytes).
const MAX_JOB_BYTES: u64 = 4096;

/// One pending upload: the snapshot's path relative to the snapshot root (also the blob
/// name). `seq` orders the queue (oldest first); `generation` grows each time the snapshot
/// file is replaced while the upload is pending, so a finished upload of an older version
/// does not retire the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub rel_path: String,
    pub seq: u64,
    pub generation: u64,
}

/// Whether `rel` is a path the snapshot store could have produced: exactly
/// `<source>/<date>/<name>.jpg` with every component already sanitized. Anything else found
/// in the queue folder (or passed in) is never uploaded.
pub fn is_safe_rel(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    parts.len() == 3
        && rel.ends_with(".jpg")
        && parts.iter().all(|p| is_safe_component(p))
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) the queue folder and returns the jobs found there, oldest first.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Self, Vec<Job>), SnapshotError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| SnapshotError::io(&dir, e))?;
        let mut jobs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| SnapshotError::io(&dir, e))? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || !name.ends_with(".job") {
                let _ = fs::remove_file(&path); // a temp file a crash left behind
                continue;
            }
            match read_job(&path) {
                Some(job) if file_name(&job.rel_path) == name => jobs.push(job),
                _ => {
                    tracing::warn!(file = %path.display(), "upload queue: dropping an unreadable job file");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        jobs.sort_by_key(|j| j.seq);
        Ok((Self { dir }, jobs))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) a job, durably.
    pub fn put(&self, job: &Job) -> Result<(), SnapshotError> {
        let path = self.dir.join(file_name(&job.rel_path));
        let tmp = self.dir.join(format!(".tmp-{}", file_name(&job.rel_path)));
        let body = serde_json::to_vec(job).expect("a job always serializes");
        let result = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&body).and_then(|_| f.sync_all()))
            .and_then(|_| fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(SnapshotError::io(path, e));
        }
        Ok(())
    }

    /// Removes a finished job (missing is fine).
    pub fn remove(&self, rel_path: &str) -> Result<(), SnapshotError> {
        let path = self.dir.join(file_name(rel_path));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SnapshotError::io(path, e)),
            _ => Ok(()),
        }
    }
}

/// The job's file name: a hash of the path, so any path maps to one fixed-size safe name.
fn file_name(rel_path: &str) -> String {
    format!(
        "{}.job",
        hex::encode(&Sha256::digest(rel_path.as_bytes())[..12])
    )
}

fn read_job(path: &Path) -> Option<Job> {
    let f = fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_JOB_BYTES + 1).read_to_end(&mut buf).ok()?;
    if buf.len() as u64 > MAX_JOB_BYTES {
        return None;
    }
    let job: Job = serde_json::from_slice(&buf).ok()?;
    is_safe_rel(&job.rel_path).then_some(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(rel: &str, seq: u64) -> Job {
        Job {
            rel_path: rel.into(),
            seq,
            generation: 0,
        }
    }

    #[test]
    fn round_trip_survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (j, jobs) = Journal::open(dir.path()).unwrap();
        assert!(jobs.is_empty());
        j.put(&job("cam/2026-11-27/b.jpg", 2)).unwrap();
        j.put(&job("cam/2026-11-27/a.jpg", 1)).unwrap();
        j.put(&job("cam/2026-11-27/c.jpg", 3)).unwrap();
        let mut bumped = job("cam/2026-11-27/b.jpg", 2);
        bumped.generation = 5;
        j.put(&bumped).unwrap();
        j.remove("cam/2026-11-27/c.jpg").unwrap();
        j.remove("cam/2026-11-27/never.jpg").unwrap();
        drop(j);
        let (_, jobs) = Journal::open(dir.path()).unwrap();
        assert_eq!(jobs, vec![job("cam/2026-11-27/a.jpg", 1), bumped]);
    }

    #[test]
    fn hostile_or_broken_job_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let evil = job("../../etc/passwd", 1);
        fs::write(
            dir.path().join(file_name(&evil.rel_path)),
            serde_json::to_vec(&evil).unwrap(),
        )
        .unwrap();
        fs::write(dir.path().join("garbage.job"), b"{not json").unwrap();
        fs::write(dir.path().join("big.job"), vec![b' '; 10_000]).unwrap();
        fs::write(dir.path().join(".tmp-x.job"), b"").unwrap();
        // A valid job under the wrong file name is not trusted either.
        fs::write(
            dir.path().join("0000.job"),
            serde_json::to_vec(&job("cam/2026-11-27/a.jpg", 1)).unwrap(),
        )
        .unwrap();
        let (_, jobs) = Journal::open(dir.path()).unwrap();
        assert!(jobs.is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn safe_rel_paths() {
        assert!(is_safe_rel("cam/2026-11-27/1-2.jpg"));
        for bad in [
            "../x/y.jpg",
            "/cam/d/a.jpg",
            "cam/d/e/a.jpg",
            "cam/d/a.png",
            "cam//a.jpg",
            "cam/../a.jpg",
            "cam/d/.a.jpg",
            "cam/d/a b.jpg",
            "cam/d/a\0.jpg",
        ] {
            assert!(!is_safe_rel(bad), "{bad}");
        }
    }
}
