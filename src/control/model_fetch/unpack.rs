//! Unpacks a (gzipped) tar into a fresh folder: regular files and folders only, relative
//! paths without `..`, and byte and entry caps enforced while streaming, before anything
//! over the cap is written.

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::FetchSettings;

/// Bytes of headers, long names and pax records allowed between two entries: tar keeps
/// these in memory, so a hostile "long name" must not grow without bound.
const META_LIMIT: u64 = 1 << 20;

/// What an archive entry is, as far as unpacking is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Metadata the tar reader applies itself (pax global headers).
    Skip,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    Sparse,
    Other(u8),
}

impl From<tar::EntryType> for EntryKind {
    fn from(t: tar::EntryType) -> Self {
        use tar::EntryType as T;
        match t {
            T::Regular | T::Continuous => EntryKind::File,
            T::Directory => EntryKind::Dir,
            T::XGlobalHeader => EntryKind::Skip,
            T::Symlink => EntryKind::Symlink,
            T::Link => EntryKind::HardLink,
            T::Char => EntryKind::CharDevice,
            T::Block => EntryKind::BlockDevice,
            T::Fifo => EntryKind::Fifo,
            T::GNUSparse => EntryKind::Sparse,
            other => EntryKind::Other(other.as_byte()),
        }
    }
}

/// Where an entry may go, relative to the unpack folder; `None` for entries to skip.
pub fn check_entry(kind: EntryKind, path: &Path) -> Result<Option<PathBuf>, String> {
    let shown = path.display();
    let what = match kind {
        EntryKind::File | EntryKind::Dir => None,
        EntryKind::Skip => return Ok(None),
        EntryKind::Symlink => Some("a symbolic link".to_string()),
        EntryKind::HardLink => Some("a hard link".to_string()),
        EntryKind::CharDevice => Some("a character device".to_string()),
        EntryKind::BlockDevice => Some("a block device".to_string()),
        EntryKind::Fifo => Some("a FIFO".to_string()),
        EntryKind::Sparse => Some("a sparse file".to_string()),
        EntryKind::Other(b) => Some(format!("of unsupported type '{}'", b as char)),
    };
    if let Some(what) = what {
        return Err(format!(
            "entry '{shown}' is {what}; a model archive must hold regular files and folders only"
        ));
    }
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "entry '{shown}' contains '..'; archive paths must stay inside the model folder"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "entry '{shown}' is an absolute path; archive paths must be relative"
                ))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Ok(None);
    }
    Ok(Some(rel))
}

/// Unpacked bytes allowed for an archive of `archive_len` bytes.
pub fn unpack_cap(s: &FetchSettings, archive_len: u64) -> u64 {
    let by_max = s.unpack_ratio.saturating_mul(s.max_bytes);
    let by_archive = s
        .max_compression
        .saturating_mul(archive_len)
        .max(s.unpack_floor);
    by_max.min(by_archive)
}

#[derive(Debug)]
pub(super) enum UnpackError {
    /// The archive breaks a rule or a cap.
    Refused(String),
    /// The archive would not fit on the disk.
    Disk(String),
    Io(PathBuf, String),
}

pub(super) struct Limits {
    pub bytes: u64,
    pub entries: usize,
    /// `bytes` comes from free disk space, not from the caps.
    pub disk_bound: bool,
}

/// Counts what the tar reader pulls through, and trips before a cap is passed.
struct Counted<R> {
    inner: R,
    total: u64,
    total_limit: u64,
    meta: Rc<Cell<Option<u64>>>,
    /// Which cap tripped: 1 the total, 2 the metadata between entries.
    tripped: Rc<Cell<u8>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        let meta = self.meta.get().map(|m| m + n as u64);
        self.meta.set(meta);
        if self.total > self.total_limit {
            self.tripped.set(1);
        } else if meta.is_some_and(|m| m > META_LIMIT) {
            self.tripped.set(2);
        }
        if self.tripped.get() != 0 {
            return Err(std::io::Error::other("unpack cap reached"));
        }
        Ok(n)
    }
}

/// Unpacks `archive` into the empty folder `into`; returns the bytes written.
pub(super) fn unpack(
    mut archive: &std::fs::File,
    into: &Path,
    limits: &Limits,
) -> Result<u64, UnpackError> {
    let io = |p: &Path, e: std::io::Error| UnpackError::Io(p.to_path_buf(), e.to_string());
    archive.seek(SeekFrom::Start(0)).map_err(|e| io(into, e))?;
    let mut head = [0u8; 2];
    let gz = archive.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b];
    archive.seek(SeekFrom::Start(0)).map_err(|e| io(into, e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(archive))
    } else {
        Box::new(archive)
    };
    let meta = Rc::new(Cell::new(Some(0)));
    let tripped = Rc::new(Cell::new(0u8));
    // Room for every header and the padding around the data, on top of the data itself.
    let overhead = (limits.entries as u64 + 2) * 1536 + META_LIMIT;
    let counted = Counted {
        inner: reader,
        total: 0,
        total_limit: limits.bytes.saturating_add(overhead),
        meta: meta.clone(),
        tripped: tripped.clone(),
    };
    let over = |written: u64| {
        let m = format!(
            "it unpacks to at least {written} bytes, over the {}-byte unpack cap",
            limits.bytes
        );
        if limits.disk_bound {
            UnpackError::Disk(m)
        } else {
            UnpackError::Refused(format!(
                "{m}; a model this large needs a higher --max-model-mb"
            ))
        }
    };
    let mut ar = tar::Archive::new(counted);
    let corrupt = |e: std::io::Error, written: u64| {
        if tripped.get() == 1 {
            over(written)
        } else if tripped.get() == 2 {
            UnpackError::Refused(format!(
                "it holds more than {META_LIMIT} bytes of headers, long names or skipped data between two entries"
            ))
        } else {
            UnpackError::Refused(format!("not a valid tar archive: {e}"))
        }
    };
    let entries = ar.entries().map_err(|e| corrupt(e, 0))?;
    let (mut written, mut count) = (0u64, 0usize);
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(e, written))?;
        meta.set(None);
        let kind = EntryKind::from(entry.header().entry_type());
        let path = entry.path().map_err(|e| corrupt(e, written))?.into_owned();
        let rel = check_entry(kind, &path).map_err(UnpackError::Refused)?;
        if let Some(rel) = rel {
            count += 1;
            if count > limits.entries {
                return Err(UnpackError::Refused(format!(
                    "it holds more than {} entries",
                    limits.entries
                )));
            }
            let dest = into.join(&rel);
            if kind == EntryKind::Dir {
                std::fs::create_dir_all(&dest).map_err(|e| io(&dest, e))?;
            } else {
                let size = entry.size();
                if written.saturating_add(size) > limits.bytes {
                    return Err(over(written.saturating_add(size)));
                }
                written += write_file(&mut entry, &dest, size, &rel)?;
            }
        }
        meta.set(Some(0));
    }
    if count == 0 {
        return Err(UnpackError::Refused("the archive is empty".into()));
    }
    Ok(written)
}

fn write_file(src: &mut impl Read, dest: &Path, size: u64, rel: &Path) -> Result<u64, UnpackError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| UnpackError::Io(parent.to_path_buf(), e.to_string()))?;
    }
    // create_new: a second entry with the same name is refused, never followed or overwritten.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                UnpackError::Refused(format!("entry '{}' appears twice", rel.display()))
            } else {
                UnpackError::Io(dest.to_path_buf(), e.to_string())
            }
        })?;
    let n = std::io::copy(&mut src.take(size), &mut out).map_err(|e| {
        UnpackError::Refused(format!("entry '{}' is truncated: {e}", rel.display()))
    })?;
    if n != size {
        return Err(UnpackError::Refused(format!(
            "entry '{}' is truncated: {n} of {size} bytes",
            rel.display()
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_pass_and_dot_folders_are_dropped() {
        let p = check_entry(EntryKind::File, Path::new("./m/model.toml")).unwrap();
        assert_eq!(p, Some(PathBuf::from("m/model.toml")));
        assert_eq!(check_entry(EntryKind::Dir, Path::new("./")).unwrap(), None);
        assert_eq!(check_entry(EntryKind::Skip, Path::new("x")).unwrap(), None);
    }

    #[test]
    fn escaping_paths_are_refused() {
        let e = check_entry(EntryKind::File, Path::new("m/../../etc/cron.d/x")).unwrap_err();
        assert!(e.contains("contains '..'"), "{e}");
        let e = check_entry(EntryKind::File, Path::new("/etc/passwd")).unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
    }

    #[test]
    fn links_and_special_entries_are_refused() {
        for (kind, word) in [
            (EntryKind::Symlink, "symbolic link"),
            (EntryKind::HardLink, "hard link"),
            (EntryKind::CharDevice, "character device"),
            (EntryKind::BlockDevice, "block device"),
            (EntryKind::Fifo, "FIFO"),
            (EntryKind::Sparse, "sparse"),
            (EntryKind::Other(b'Z'), "unsupported type 'Z'"),
        ] {
            let e = check_entry(kind, Path::new("labels.txt")).unwrap_err();
            assert!(
                e.contains(word) && e.contains("regular files and folders"),
                "{e}"
            );
        }
        let kind = EntryKind::from(tar::EntryType::Link);
        assert_eq!(kind, EntryKind::HardLink);
    }

    #[test]
    fn cap_follows_the_archive_size_with_a_floor_and_a_ceiling() {
        let s = FetchSettings {
            max_bytes: 100 << 20,
            unpack_ratio: 4,
            max_compression: 20,
            unpack_floor: 16 << 20,
            ..Default::default()
        };
        // A 1 MB gzip bomb may unpack to 20 MB, not to 400 MB.
        assert_eq!(unpack_cap(&s, 1 << 20), 20 << 20);
        // A tiny archive still gets the floor.
        assert_eq!(unpack_cap(&s, 1000), 16 << 20);
        // A big one stops at ratio × max.
        assert_eq!(unpack_cap(&s, 90 << 20), 400 << 20);
    }
}
