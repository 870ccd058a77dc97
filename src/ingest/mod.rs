//! Ingest: a GStreamer pipeline per source, ending in an appsink that delivers frames
//! already scaled and color-converted to the model's input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod source;

pub use source::{init, Frame, FrameSink, Ingest, IngestConfig, IngestStats, InputTarget, Mode};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source or preset '{name}'; presets: {available}. A file path must exist; URLs start with rtsp:// or file://")]
    UnknownPreset { name: String, available: String },
    #[error("video file {} not found", shown(.0))]
    FileNotFound(PathBuf),
    #[error("preset '{preset}' needs a value for {{{key}}}: pass --set {key}=VALUE")]
    MissingPlaceholder { preset: String, key: String },
    #[error("invalid preset file {path}: {message}")]
    BadPreset { path: PathBuf, message: String },
    #[error("GStreamer is not usable: {0}; run `make deps` to install it")]
    Init(String),
    #[error("cannot build pipeline '{launch}': {message}")]
    Build { launch: String, message: String },
    #[error("source '{source_name}' failed: {message}")]
    Stream {
        source_name: String,
        message: String,
    },
}

/// A preset from `pipelines/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    #[serde(default)]
    pub description: String,
    pub live: bool,
    /// gst-launch description of the head of the pipeline, with `{placeholders}`.
    pub launch: String,
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
}

/// Presets compiled into the binary, so a container needs no files beside it.
const BUILTIN: &[(&str, &str)] = &[
    ("file", include_str!("../../pipelines/file.toml")),
    ("rtsp", include_str!("../../pipelines/rtsp.toml")),
    ("usb", include_str!("../../pipelines/usb.toml")),
    ("test", include_str!("../../pipelines/test.toml")),
];

/// A resolved source: a display name, whether it is live, and the pipeline head.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub preset: String,
    pub live: bool,
    pub launch: String,
}

/// Presets: built-ins, overridden or extended by `*.toml` in `dir` when given.
pub fn presets(dir: Option<&Path>) -> Result<BTreeMap<String, Preset>, IngestError> {
    let mut out = BTreeMap::new();
    for (name, text) in BUILTIN {
        let p: Preset = toml::from_str(text).map_err(|e| IngestError::BadPreset {
            path: PathBuf::from(format!("pipelines/{name}.toml")),
            message: e.message().to_string(),
        })?;
        out.insert(name.to_string(), p);
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|e| IngestError::BadPreset {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let bad = |message: String| IngestError::BadPreset {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let p: Preset = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.insert(stem.to_string(), p);
            }
        }
    }
    Ok(out)
}

/// Turns `--source` (a path, a URL, a device, or a preset name) plus `--set k=v` into a pipeline head.
pub fn resolve(
    source: &str,
    overrides: &BTreeMap<String, String>,
    presets_dir: Option<&Path>,
) -> Result<SourceSpec, IngestError> {
    let all = presets(presets_dir)?;
    let mut params = overrides.clone();
    let lower = source.to_ascii_lowercase();
    let (preset_name, name) = if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        params
            .entry("uri".into())
            .or_insert_with(|| source.to_string());
        ("rtsp".to_string(), crate::redact::url(source))
    } else if let Some(path) = source.strip_prefix("file://") {
        let p = PathBuf::from(path);
        check_file(&p)?;
        params
            .entry("uri".into())
            .or_insert_with(|| source.to_string());
        ("file".to_string(), display_name(&p))
    } else if source.starts_with("/dev/video") {
        params
            .entry("device".into())
            .or_insert_with(|| source.to_string());
        ("usb".to_string(), source.to_string())
    } else if all.contains_key(source) {
        (source.to_string(), source.to_string())
    } else if source.contains('/') || source.contains('.') || Path::new(source).exists() {
        let p = PathBuf::from(source);
        check_file(&p)?;
        let abs = std::fs::canonicalize(&p).map_err(|_| IngestError::FileNotFound(p.clone()))?;
        params
            .entry("uri".into())
            .or_insert_with(|| format!("file://{}", abs.display()));
        ("file".to_string(), display_name(&p))
    } else {
        return Err(IngestError::UnknownPreset {
            name: source.to_string(),
            available: all.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let preset = all
        .get(&preset_name)
        .ok_or_else(|| IngestError::UnknownPreset {
            name: preset_name.clone(),
            available: all.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    let mut values = preset.defaults.clone();
    values.extend(params);
    let launch = substitute(&preset.launch, &values, &preset_name)?;
    Ok(SourceSpec {
        name: values.get("name").cloned().unwrap_or(name),
        preset: preset_name,
        live: preset.live,
        launch,
    })
}

/// A raw gst-launch head given by the user (`--pipeline`).
pub fn raw(launch: &str, live: bool, name: &str) -> SourceSpec {
    SourceSpec {
        name: name.to_string(),
        preset: "raw".into(),
        live,
        launch: launch.to_string(),
    }
}

fn check_file(p: &Path) -> Result<(), IngestError> {
    if p.is_file() {
        Ok(())
    } else {
        Err(IngestError::FileNotFound(p.to_path_buf()))
    }
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

/// A path for an error: one that is really a URL (`http://user:pw@host/x`) loses its
/// credentials; a plain path stays as it is ('?' and '#' are file name characters).
fn shown(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains("://") {
        crate::redact::url(&s)
    } else {
        s
    }
}

fn substitute(
    template: &str,
    values: &BTreeMap<String, String>,
    preset: &str,
) -> Result<String, IngestError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = &after[..end];
        let value = values
            .get(key)
            .ok_or_else(|| IngestError::MissingPlaceholder {
                preset: preset.to_string(),
                key: key.to_string(),
            })?;
        out.push_str(&quote(value));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Quotes a value for gst-launch syntax when it holds anything beyond plain URL characters.
fn quote(v: &str) -> String {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/:._-+%@=?&~,".contains(c));
    if plain && !v.is_empty() {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_urls_devices_and_presets() {
        let none = BTreeMap::new();
        let r = resolve("rtsp://user:pw@127.0.0.1:8554/cam", &none, None).unwrap();
        assert_eq!(r.preset, "rtsp");
        assert!(r.live);
        assert_eq!(r.name, "rtsp://***@127.0.0.1:8554/cam");
        assert!(r
            .launch
            .contains("location=rtsp://user:pw@127.0.0.1:8554/cam"));
        assert!(r.launch.contains("latency=100"));
        let t = resolve("test", &none, None).unwrap();
        assert!(t.launch.contains("pattern=ball"));
        let u = resolve("/dev/video2", &none, None).unwrap();
        assert!(u.launch.contains("device=/dev/video2"));
    }

    #[test]
    fn unknown_preset_and_missing_file_are_clear() {
        let none = BTreeMap::new();
        let e = resolve("webcam", &none, None).unwrap_err().to_string();
        assert!(
            e.contains("'webcam'") && e.contains("file, rtsp, test, usb"),
            "{e}"
        );
        let e = resolve("/no/such/video.mp4", &none, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found"), "{e}");
    }

    /// Found by the source_resolve fuzz target: the display name kept the password's tail
    /// after its '@', and a URL that is not rtsp:// came back whole in "not found".
    #[test]
    fn credentials_stay_out_of_names_and_errors() {
        let none = BTreeMap::new();
        let r = resolve("rtsps://admin:p@ss@cam.local:554/s", &none, None).unwrap();
        assert_eq!(r.name, "rtsps://***@cam.local:554/s");
        let e = resolve("http://admin:secret@cam.local/x.mp4", &none, None)
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("secret") && e.contains("cam.local/x.mp4"),
            "{e}"
        );
        let e = resolve("/no/such/v?x#y.mp4", &none, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/v?x#y.mp4"), "{e}");
    }

    #[test]
    fn values_with_spaces_are_quoted() {
        let mut v = BTreeMap::new();
        v.insert("uri".to_string(), "file:///a b.mp4".to_string());
        assert_eq!(
            substitute("x uri={uri}", &v, "file").unwrap(),
            "x uri=\"file:///a b.mp4\""
        );
    }
}
