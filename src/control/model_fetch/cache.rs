//! The model cache: `<cache>/<archive sha256>/{verified, m/...}`. An entry is unpacked into
//! a unique folder under `<cache>/.tmp`, its marker written last, and the whole folder renamed
//! into place, so an entry is either complete or absent. A hit re-checks the marker against
//! the tree (sizes, entry count, no links). The total is bounded, least recently used first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::download::Staged;
use super::tree::{check_tree, find_manifest, TreeStats};
use super::unpack::{unpack, unpack_cap, Limits, UnpackError};
use super::{io, FetchError, FetchSettings};

const MARKER: &str = "verified";
const TREE: &str = "m";
const TMP: &str = ".tmp";
const MARKER_HEAD: &str = "edgelens-cache 1";

pub(super) struct Cache<'a> {
    root: PathBuf,
    tmp: PathBuf,
    s: &'a FetchSettings,
}

/// One cache entry, as eviction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub sha: String,
    /// `None`: no valid marker, so a crashed or foreign entry that can go at once.
    pub bytes: Option<u64>,
    pub last_used: SystemTime,
    pub pinned: bool,
}

/// Which entries to remove so that the rest fits in `budget` bytes: invalid ones first, then
/// least recently used; pinned entries stay even if the budget is missed.
pub fn plan_eviction(entries: &[EntryInfo], budget: u64) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| e.bytes.is_none() && !e.pinned)
        .map(|e| e.sha.clone())
        .collect();
    let mut valid: Vec<&EntryInfo> = entries.iter().filter(|e| e.bytes.is_some()).collect();
    let mut total: u64 = valid.iter().filter_map(|e| e.bytes).sum();
    valid.sort_by_key(|e| e.last_used);
    for e in valid {
        if total <= budget {
            break;
        }
        if !e.pinned {
            total -= e.bytes.unwrap_or(0);
            out.push(e.sha.clone());
        }
    }
    out
}

fn is_sha(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn marker_text(sha: &str, t: &TreeStats) -> String {
    format!(
        "{MARKER_HEAD}\nsha256={sha}\nbytes={}\nentries={}\n",
        t.bytes, t.entries
    )
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64, FetchError> {
    let st = rustix::fs::statvfs(path).map_err(|e| io(path)(e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

impl<'a> Cache<'a> {
    pub fn open(root: &Path, s: &'a FetchSettings) -> Result<Cache<'a>, FetchError> {
        let tmp = root.join(TMP);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let c = Cache {
            root: root.to_path_buf(),
            tmp,
            s,
        };
        c.sweep();
        Ok(c)
    }

    pub fn temp_file(
        &self,
        prefix: &str,
        suffix: &str,
    ) -> Result<tempfile::NamedTempFile, FetchError> {
        tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(&self.tmp)
            .map_err(io(&self.tmp))
    }

    /// Leftovers of a crash (ours, older than any live fetch) and of the old fixed-name layout.
    fn sweep(&self) {
        let stale = self.s.timeout + Duration::from_secs(3600);
        for e in std::fs::read_dir(&self.tmp).into_iter().flatten().flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > stale);
            if old {
                remove_any(&e.path());
            }
        }
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if (name.starts_with("download-") && name.ends_with(".part"))
                || name.ends_with(".unpack")
            {
                remove_any(&e.path());
            }
        }
    }

    /// The model folder of a verified entry, marking it used; a bad entry is removed.
    pub fn lookup(&self, sha: &str) -> Option<PathBuf> {
        // The sha may come from the twin: it becomes a path only once it is plain hex.
        if !is_sha(sha) {
            return None;
        }
        let entry = self.root.join(sha.to_ascii_lowercase());
        if !entry.is_dir() {
            return None;
        }
        match self.verify(&entry, sha) {
            Ok(dir) => {
                let marker = std::fs::File::options()
                    .append(true)
                    .open(entry.join(MARKER));
                if let Ok(f) = marker {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(dir)
            }
            Err(why) => {
                tracing::warn!(entry = %entry.display(), why, "cache entry not trusted; fetching again");
                self.discard(&entry);
                None
            }
        }
    }

    fn verify(&self, entry: &Path, sha: &str) -> Result<PathBuf, String> {
        let text =
            std::fs::read_to_string(entry.join(MARKER)).map_err(|e| format!("no marker: {e}"))?;
        let tree = entry.join(TREE);
        let stats = check_tree(&tree, self.s.max_entries).map_err(|e| e.to_string())?;
        if text != marker_text(&sha.to_ascii_lowercase(), &stats) {
            return Err("the marker does not match the unpacked files".into());
        }
        find_manifest(&tree).ok_or_else(|| "no model.toml".to_string())
    }

    /// Renames an entry out of sight first, so no reader ever sees it half deleted.
    fn discard(&self, entry: &Path) {
        if let Ok(grave) = tempfile::Builder::new()
            .prefix("evict-")
            .tempdir_in(&self.tmp)
        {
            let target = grave.path().join("e");
            if std::fs::rename(entry, &target).is_ok() {
                return; // `grave` removes it on drop.
            }
        }
        remove_any(entry);
    }

    fn entries(&self) -> Vec<EntryInfo> {
        let pins: Vec<PathBuf> = self
            .s
            .in_use
            .as_ref()
            .map(|f| f())
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.canonicalize().unwrap_or(p))
            .collect();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            if !is_sha(&name) {
                continue;
            }
            let path = e.path().canonicalize().unwrap_or(e.path());
            let marker = e.path().join(MARKER);
            let bytes = std::fs::read_to_string(&marker).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("bytes="))
                    .and_then(|v| v.parse().ok())
            });
            let last_used = std::fs::metadata(&marker)
                .or_else(|_| e.metadata())
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(EntryInfo {
                sha: name,
                bytes,
                last_used,
                pinned: pins.iter().any(|p| p.starts_with(&path)),
            });
        }
        out
    }

    /// Makes room for `incoming` bytes under the cache bound.
    fn evict(&self, incoming: u64, keep: Option<&str>) {
        let mut entries = self.entries();
        for e in entries.iter_mut() {
            e.pinned |= Some(e.sha.as_str()) == keep;
        }
        let budget = self.s.cache_max_bytes.saturating_sub(incoming);
        for sha in plan_eviction(&entries, budget) {
            tracing::info!(sha, "evicting cached model");
            self.discard(&self.root.join(sha));
        }
    }

    /// Unpacks a verified archive into the cache; returns the model folder.
    pub fn unpack_into(&self, staged: &Staged, shown: &str) -> Result<PathBuf, FetchError> {
        let cap = unpack_cap(self.s, staged.len);
        self.evict(staged.len, None);
        let room = free_bytes(&self.root)?.saturating_sub(self.s.disk_reserve);
        if room < staged.len {
            return Err(FetchError::DiskFull {
                path: self.root.clone(),
                message: format!(
                    "{room} bytes usable (keeping {} free), the archive alone is {} bytes",
                    self.s.disk_reserve, staged.len
                ),
            });
        }
        let work = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&self.tmp)
            .map_err(io(&self.tmp))?;
        let tree = work.path().join(TREE);
        std::fs::create_dir(&tree).map_err(io(&tree))?;
        let limits = Limits {
            bytes: cap.min(room),
            entries: self.s.max_entries,
            disk_bound: room < cap,
        };
        unpack(staged.file.as_file(), &tree, &limits).map_err(|e| match e {
            UnpackError::Refused(message) => FetchError::Archive {
                uri: shown.to_string(),
                message,
            },
            UnpackError::Disk(message) => FetchError::DiskFull {
                path: self.root.clone(),
                message,
            },
            UnpackError::Io(path, message) => FetchError::Io { path, message },
        })?;
        let refused = |message: String| FetchError::Archive {
            uri: shown.to_string(),
            message,
        };
        let stats = check_tree(&tree, self.s.max_entries).map_err(|e| refused(e.to_string()))?;
        if find_manifest(&tree).is_none() {
            return Err(refused(format!(
                "it holds no {} at the top or in a single top folder",
                crate::model::MANIFEST_FILE
            )));
        }
        let marker = work.path().join(MARKER);
        let mut f = std::fs::File::create(&marker).map_err(io(&marker))?;
        f.write_all(marker_text(&staged.sha256, &stats).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(&marker))?;
        self.commit(work, &staged.sha256)?;
        self.evict(0, Some(&staged.sha256));
        self.lookup(&staged.sha256).ok_or_else(|| FetchError::Io {
            path: self.root.join(&staged.sha256),
            message: "the cache entry vanished right after unpacking; try again".into(),
        })
    }

    /// Atomic rename into place. A concurrent fetch of the same archive may have won: then its
    /// (verified) entry is used and ours is dropped.
    fn commit(&self, work: tempfile::TempDir, sha: &str) -> Result<(), FetchError> {
        let dest = self.root.join(sha);
        for _ in 0..2 {
            if std::fs::rename(work.path(), &dest).is_ok() {
                let _ = work.keep();
                return Ok(());
            }
            if self.lookup(sha).is_some() {
                return Ok(());
            }
            self.discard(&dest);
        }
        Err(FetchError::Io {
            path: dest,
            message: "cannot move the unpacked model into the cache".into(),
        })
    }
}

fn remove_any(p: &Path) {
    let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(sha: &str, bytes: Option<u64>, age: u64, pinned: bool) -> EntryInfo {
        EntryInfo {
            sha: sha.into(),
            bytes,
            last_used: SystemTime::UNIX_EPOCH + Duration::from_secs(1000 - age),
            pinned,
        }
    }

    #[test]
    fn least_recently_used_go_first_until_the_rest_fits() {
        let list = [
            e("new", Some(40), 1, false),
            e("old", Some(40), 9, false),
            e("mid", Some(40), 5, false),
        ];
        assert_eq!(plan_eviction(&list, 100), vec!["old".to_string()]);
        assert_eq!(
            plan_eviction(&list, 40),
            vec!["old".to_string(), "mid".to_string()]
        );
        assert!(plan_eviction(&list, 120).is_empty());
    }

    #[test]
    fn pinned_entries_stay_and_invalid_ones_go() {
        let list = [
            e("running", Some(100), 9, true),
            e("bad", None, 0, false),
            e("x", Some(10), 1, false),
        ];
        assert_eq!(
            plan_eviction(&list, 50),
            vec!["bad".to_string(), "x".to_string()]
        );
    }

    #[test]
    fn marker_names_sha_bytes_and_entries() {
        let t = marker_text(
            "ab",
            &TreeStats {
                bytes: 5,
                entries: 2,
            },
        );
        assert_eq!(t, "edgelens-cache 1\nsha256=ab\nbytes=5\nentries=2\n");
        assert!(is_sha(&"a".repeat(64)) && !is_sha("../x"));
    }
}
