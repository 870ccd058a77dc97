//! A model is described by data: `model.toml` next to its weights and labels.
//! Nothing outside this module knows how a manifest is laid out on disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod paths;

pub use paths::{check_relative, resolve_inside};
use paths::{read_bounded, MAX_LABELS_BYTES, MAX_MANIFEST_BYTES};

pub const MANIFEST_FILE: &str = "model.toml";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model folder {0} does not exist: pass a folder that holds a model.toml (e.g. models/ssdlite-person)")]
    FolderMissing(PathBuf),
    #[error("{0} not found: a model folder needs a model.toml manifest next to its weights")]
    ManifestMissing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "sha256 mismatch for {path}: manifest says {expected}, file has {actual}; the file is corrupt or was replaced (re-derive it with models/convert)"
    )]
    Sha256Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFormat {
    Onnx,
    TfFrozen,
    TfSavedModel,
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::TfFrozen => "tf-frozen",
            ModelFormat::TfSavedModel => "tf-saved-model",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    U8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    Stretch,
    Letterbox,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: Option<String>,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub dtype: DType,
    pub color: ColorOrder,
    #[serde(default = "default_resize")]
    pub resize: Resize,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
}

fn default_resize() -> Resize {
    Resize::Stretch
}

impl InputSpec {
    /// The tensor shape the backend is fed, batch 1.
    pub fn shape(&self) -> [usize; 4] {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nhwc => [1, h, w, 3],
            Layout::Nchw => [1, 3, h, w],
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    pub registry: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
    pub path: Option<String>,
    pub sha256: Option<String>,
    pub conversion: Option<String>,
}

/// `model.toml` as written on disk. The `[decoder]` table stays untyped here:
/// each decoder parses its own parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub format: ModelFormat,
    pub file: String,
    pub sha256: Option<String>,
    pub labels: Option<String>,
    pub license: Option<String>,
    pub license_file: Option<String>,
    #[serde(default)]
    pub backends: Vec<String>,
    /// Per-backend settings, `[backend.<name>]`: each backend parses its own table.
    #[serde(default, rename = "backend")]
    pub backend_options: std::collections::BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub source: SourceInfo,
    pub input: InputSpec,
    pub decoder: toml::Table,
}

impl Manifest {
    /// Parses `model.toml` text and runs the checks that need no files; `Model::load` calls
    /// it before it looks at the folder. Pure, so a fuzz target drives it.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if manifest.input.width == 0 || manifest.input.height == 0 {
            return Err("input width and height must be > 0".into());
        }
        // Decoders size tables from the input before the graph is looked at: bound it here.
        let (input, max) = (&manifest.input, crate::defaults::MODEL_INPUT_MAX_SIDE);
        if let Some((field, value)) = [("width", input.width), ("height", input.height)]
            .into_iter()
            .find(|(_, v)| *v > max)
        {
            return Err(format!(
                "[input] {field} = {value} is above the limit of {max}: \
                 give the size the model's graph takes (detectors take 300-1280)"
            ));
        }
        if manifest.input.std.is_some_and(|s| s.contains(&0.0)) {
            return Err("input std must not contain 0".into());
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod parse_tests {
    use super::Manifest;

    #[test]
    fn parse_accepts_bundled_manifests_and_refuses_what_load_refuses() {
        let text = include_str!("../../models/ssdlite-person/model.toml");
        let m = Manifest::parse(text).unwrap();
        assert!(m.input.width > 0);
        let zero = text.replacen(&format!("width = {}", m.input.width), "width = 0", 1);
        assert!(Manifest::parse(&zero).unwrap_err().contains("> 0"));
        assert!(Manifest::parse("name = 1").is_err());
        // Sizes are bounded: at the limit parses, above it is refused by field and limit.
        let max = crate::defaults::MODEL_INPUT_MAX_SIDE;
        let at_limit = text.replacen("height = 300", &format!("height = {max}"), 1);
        assert_eq!(Manifest::parse(&at_limit).unwrap().input.height, max);
        let e = Manifest::parse(&text.replacen("height = 300", "height = 65535", 1)).unwrap_err();
        assert!(
            e.contains("[input] height = 65535") && e.contains(&max.to_string()),
            "{e}"
        );
    }
}

/// A manifest plus everything it points to, resolved and checked.
#[derive(Debug, Clone)]
pub struct Model {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub labels: Vec<String>,
    /// sha256 of the weights as found on disk.
    pub sha256: String,
}

impl Model {
    /// Reads `dir/model.toml`, its labels, and checks the weights' sha256.
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::FolderMissing(dir.to_path_buf()));
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            return Err(ModelError::ManifestMissing(manifest_path));
        }
        let text = read_bounded(&manifest_path, MAX_MANIFEST_BYTES)?;
        let invalid = |message: String| ModelError::Invalid {
            path: manifest_path.clone(),
            message,
        };
        let manifest = Manifest::parse(&text).map_err(invalid)?;
        let root = dir.canonicalize().map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let weights = resolve_inside(&root, "file", &manifest.file, true).map_err(invalid)?;
        if let Some(license) = &manifest.license_file {
            check_relative("license_file", license).map_err(invalid)?;
        }
        let sha256 = sha256_path(&weights)?;
        if let Some(expected) = &manifest.sha256 {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(ModelError::Sha256Mismatch {
                    path: weights,
                    expected: expected.clone(),
                    actual: sha256,
                });
            }
        }
        let labels = match &manifest.labels {
            Some(file) => {
                let path = resolve_inside(&root, "labels", file, false).map_err(invalid)?;
                read_bounded(&path, MAX_LABELS_BYTES)?
            }
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
            None => Vec::new(),
        };
        Ok(Model {
            dir: dir.to_path_buf(),
            manifest,
            labels,
            sha256,
        })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.file)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    pub fn label(&self, class: usize) -> String {
        self.labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| format!("class{class}"))
    }
}

/// sha256 of a file, or of every file in a folder (SavedModel) in sorted path order.
pub fn sha256_path(path: &Path) -> Result<String, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut hasher = Sha256::new();
    if path.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files).map_err(io)?;
        files.sort();
        for f in files {
            let rel = f.strip_prefix(path).unwrap_or(&f);
            hasher.update(rel.to_string_lossy().as_bytes());
            hasher.update([0u8]);
            hash_file(&f, &mut hasher).map_err(io)?;
        }
    } else {
        hash_file(path, &mut hasher).map_err(io)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, hasher)?;
    Ok(())
}

/// Regular files only: a link or FIFO inside a SavedModel folder is refused, not followed.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let (p, ft) = (entry.path(), entry.file_type()?);
        if ft.is_dir() {
            collect_files(&p, out)?;
        } else if ft.is_file() {
            out.push(p);
        } else {
            return Err(std::io::Error::other(format!(
                "{} is a link or special file; a model folder holds regular files and folders only",
                p.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with weights, labels and a manifest whose `labels` line is `labels`.
    fn folder(labels: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("w.onnx"), b"weights").unwrap();
        std::fs::write(t.path().join("labels.txt"), "person\n").unwrap();
        let manifest = format!(
            "name = \"t\"\nversion = \"1\"\nformat = \"onnx\"\nfile = \"w.onnx\"\n{labels}\n\
             [input]\nwidth = 8\nheight = 8\nlayout = \"nhwc\"\ndtype = \"f32\"\ncolor = \"rgb\"\n\
             [decoder]\nkind = \"x\"\n"
        );
        std::fs::write(t.path().join(MANIFEST_FILE), manifest).unwrap();
        t
    }

    fn load_err(labels: &str) -> String {
        let t = folder(labels);
        Model::load(t.path()).unwrap_err().to_string()
    }

    #[test]
    fn relative_paths_load() {
        let t = folder("labels = \"./labels.txt\"");
        let m = Model::load(t.path()).unwrap();
        assert_eq!(m.labels, vec!["person".to_string()]);
    }

    #[test]
    fn dot_dot_and_absolute_paths_are_refused_by_field() {
        let e = load_err("labels = \"../../../../etc/passwd\"");
        assert!(
            e.contains("labels = \"../../../../etc/passwd\" contains '..'"),
            "{e}"
        );
        assert!(e.contains("inside the model folder"), "{e}");
        let e = load_err("labels = \"/etc/passwd\"");
        assert!(e.contains("absolute path"), "{e}");
        let e = load_err("labels = \"labels.txt\"\nlicense_file = \"../LICENSE\"");
        assert!(e.contains("license_file"), "{e}");
        assert_eq!(check_relative("file", "a/./b.onnx"), Ok(()));
        assert!(check_relative("file", "").is_err());
    }

    #[test]
    fn symlinks_out_of_the_folder_and_fifos_are_refused() {
        let t = folder("labels = \"l.txt\"");
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("l.txt")).unwrap();
        let e = Model::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("resolves outside the model folder"), "{e}");

        let t = folder("labels = \"p\"");
        let made = std::process::Command::new("mkfifo")
            .arg(t.path().join("p"))
            .status()
            .unwrap();
        assert!(made.success());
        let e = Model::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_symlink_inside_the_folder_is_followed() {
        let t = folder("labels = \"l.txt\"");
        std::os::unix::fs::symlink("labels.txt", t.path().join("l.txt")).unwrap();
        assert_eq!(
            Model::load(t.path()).unwrap().labels,
            vec!["person".to_string()]
        );
    }
}
