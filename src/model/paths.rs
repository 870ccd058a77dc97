//! Manifest path fields (`file`, `labels`, `license_file`) come from whoever wrote the
//! model archive: each must name a regular file inside the model folder, and files read
//! whole are bounded.

use std::path::{Path, PathBuf};

use super::ModelError;

/// Manifests and label files are small; a bigger one is hostile or a mistake.
pub(super) const MAX_MANIFEST_BYTES: u64 = 1 << 20;
pub(super) const MAX_LABELS_BYTES: u64 = 4 << 20;

pub(super) fn read_bounded(path: &Path, max: u64) -> Result<String, ModelError> {
    use std::io::Read;
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    let f = std::fs::File::open(path).map_err(io)?;
    f.take(max + 1).read_to_string(&mut text).map_err(io)?;
    if text.len() as u64 > max {
        return Err(io(std::io::Error::other(format!(
            "larger than {max} bytes; a manifest or label file this big is refused"
        ))));
    }
    Ok(text)
}

/// A manifest path field must name a file inside the model folder: relative, no `..`.
pub fn check_relative(field: &str, value: &str) -> Result<(), String> {
    use std::path::Component;
    let fix = "name a file inside the model folder, relative to model.toml (e.g. \"labels.txt\")";
    if value.is_empty() {
        return Err(format!("{field} is empty; {fix}"));
    }
    for c in Path::new(value).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{field} = \"{value}\" is an absolute path; {fix}"))
            }
            Component::ParentDir => {
                return Err(format!("{field} = \"{value}\" contains '..'; {fix}"))
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(())
}

/// Resolves a manifest path field against the canonical model folder `root`: the real path
/// (symlinks followed) must stay inside it and be a regular file (or a folder, if allowed).
pub fn resolve_inside(
    root: &Path,
    field: &str,
    value: &str,
    folder_ok: bool,
) -> Result<PathBuf, String> {
    check_relative(field, value)?;
    let real = root.join(value).canonicalize().map_err(|e| {
        format!(
            "{field} = \"{value}\" cannot be opened in {}: {e}",
            root.display()
        )
    })?;
    if !real.starts_with(root) || real == root {
        return Err(format!(
            "{field} = \"{value}\" resolves outside the model folder (through a symbolic link); put the file itself in the folder"
        ));
    }
    let ft = std::fs::metadata(&real)
        .map_err(|e| format!("{field} = \"{value}\": {e}"))?
        .file_type();
    if !(ft.is_file() || folder_ok && ft.is_dir()) {
        return Err(format!(
            "{field} = \"{value}\" is not a regular file{}; a model folder holds regular files and folders only",
            if folder_ok { " or folder" } else { "" }
        ));
    }
    Ok(real)
}
