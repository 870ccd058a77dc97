//! A model folder may hold only regular files (one link each) and folders: a symlink or hard
//! link could make the module read any file it can, a FIFO could hang the load, a device
//! could be anything.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::model::MANIFEST_FILE;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("{0} is a symbolic link; a model folder must hold regular files and folders only (copy the target in)")]
    Symlink(PathBuf),
    #[error("{0} has {1} hard links; a model folder must hold its own copy of each file (copy it instead of linking)")]
    HardLink(PathBuf, u64),
    #[error("{0} is a {1}; a model folder must hold regular files and folders only")]
    Special(PathBuf, &'static str),
    #[error("more than {0} entries; a model folder this large is refused")]
    TooMany(usize),
    #[error("{0}: {1}")]
    Io(PathBuf, String),
}

/// What a checked tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Sum of the regular files' sizes.
    pub bytes: u64,
    /// Files and folders below the top.
    pub entries: u64,
}

/// The name of a file type that has no place in a model folder, or `None` if it has one.
fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    if ft.is_char_device() {
        Some("character device")
    } else if ft.is_block_device() {
        Some("block device")
    } else if ft.is_fifo() {
        Some("FIFO")
    } else if ft.is_socket() {
        Some("socket")
    } else if ft.is_file() || ft.is_dir() {
        None
    } else {
        Some("special file")
    }
}

/// Walks `dir` without following links; refuses anything but regular files with one link
/// and folders, and more than `max_entries` entries.
pub fn check_tree(dir: &Path, max_entries: usize) -> Result<TreeStats, TreeError> {
    let mut stats = TreeStats::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let read =
            std::fs::read_dir(&folder).map_err(|e| TreeError::Io(folder.clone(), e.to_string()))?;
        for entry in read {
            let entry = entry.map_err(|e| TreeError::Io(folder.clone(), e.to_string()))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| TreeError::Io(path.clone(), e.to_string()))?;
            stats.entries += 1;
            if stats.entries > max_entries as u64 {
                return Err(TreeError::TooMany(max_entries));
            }
            let ft = meta.file_type();
            if ft.is_symlink() {
                return Err(TreeError::Symlink(path));
            }
            if let Some(kind) = special_kind(&ft) {
                return Err(TreeError::Special(path, kind));
            }
            if ft.is_dir() {
                stack.push(path);
            } else {
                if meta.nlink() > 1 {
                    return Err(TreeError::HardLink(path, meta.nlink()));
                }
                stats.bytes += meta.len();
            }
        }
    }
    Ok(stats)
}

/// model.toml at the top, or inside the archive's single top folder.
pub(super) fn find_manifest(dir: &Path) -> Option<PathBuf> {
    if dir.join(MANIFEST_FILE).is_file() {
        return Some(dir.to_path_buf());
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    match subdirs.as_slice() {
        [one] if one.join(MANIFEST_FILE).is_file() => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tree_is_counted() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        std::fs::write(t.path().join("sub/a"), b"12345").unwrap();
        std::fs::write(t.path().join("b"), b"123").unwrap();
        let s = check_tree(t.path(), 100).unwrap();
        assert_eq!(
            s,
            TreeStats {
                bytes: 8,
                entries: 3
            }
        );
        assert_eq!(check_tree(t.path(), 2), Err(TreeError::TooMany(2)));
    }

    #[test]
    fn links_and_fifos_are_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("labels.txt")).unwrap();
        let e = check_tree(t.path(), 100).unwrap_err();
        assert!(matches!(e, TreeError::Symlink(_)), "{e}");

        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"x").unwrap();
        std::fs::hard_link(t.path().join("a"), t.path().join("b")).unwrap();
        let e = check_tree(t.path(), 100).unwrap_err();
        assert!(matches!(e, TreeError::HardLink(_, 2)), "{e}");

        let t = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(t.path().join("p"))
            .status()
            .unwrap();
        assert!(made.success());
        let e = check_tree(t.path(), 100).unwrap_err();
        assert_eq!(e, TreeError::Special(t.path().join("p"), "FIFO"));
        assert!(e.to_string().contains("regular files and folders only"));
    }
}
