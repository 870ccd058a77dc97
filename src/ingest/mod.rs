//! Ingest: a GStreamer pipeline per source, built in code from a preset (or, from the CLI
//! only, raw launch text), ending in an appsink that delivers frames already scaled and
//! color-converted to a [`ScaleTarget`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod decoders;
mod frame;
mod graph;
mod presets;
mod source;
mod typed;

pub use frame::{letterbox_size, Frame, FrameQueue, Geometry, Mode, Pushed, ScaleTarget};
pub use graph::{build, Built};
pub use presets::{presets, ElementSpec, Preset, Setting};
pub use source::{Ingest, IngestConfig, IngestStats};

use crate::redact;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source or preset '{name}'; presets: {available}. A file path must exist; URLs start with rtsp:// or file://")]
    UnknownPreset { name: String, available: String },
    #[error("video file {} not found", shown(.0))]
    FileNotFound(PathBuf),
    #[error("preset '{preset}' needs a value for {{{key}}}: pass --set {key}=VALUE")]
    MissingPlaceholder { preset: String, key: String },
    #[error("preset '{preset}' has no parameter '{key}'; it takes: {known}")]
    UnknownParam {
        preset: String,
        key: String,
        known: String,
    },
    #[error("source parameter '{param}' = \"{value}\" does not fit {element}'s property '{property}': expected {expected}")]
    BadValue {
        param: String,
        element: String,
        property: String,
        value: String,
        expected: String,
    },
    #[error(
        "GStreamer element '{element}' is not available; install its plugin (run `make deps`)"
    )]
    NoElement { element: String },
    /// The text of `control::check_name`: the rule of the twin's `sources` keys.
    #[error("{0}; it names the source in every message: pick a short one like name=door-1")]
    BadName(String),
    #[error("source {what} holds a control character (NUL, newline, ...): remove it")]
    ControlCharacter { what: String },
    #[error("invalid preset file {path}: {message}")]
    BadPreset { path: PathBuf, message: String },
    #[error("GStreamer is not usable: {0}; run `make deps` to install it")]
    Init(String),
    /// `what` and `message` are redacted: no camera credentials.
    #[error("cannot build pipeline '{what}': {message}")]
    Build { what: String, message: String },
    #[error("source '{source_name}' failed: {message}")]
    Stream {
        source_name: String,
        message: String,
    },
}

pub fn init() -> Result<(), IngestError> {
    gstreamer::init().map_err(|e| IngestError::Init(e.to_string()))
}

/// A resolved source: a display name (never with credentials), whether it is live, and
/// what heads its pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub name: String,
    pub preset: String,
    pub live: bool,
    pub head: SourceHead,
}

/// What produces the frames.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceHead {
    /// A preset's element with typed properties: all that `--source` and the twin produce.
    Element(ElementSpec),
    /// `--pipeline` launch text: a CLI-only escape hatch. Only [`raw`] makes one.
    Launch(RawLaunch),
}

/// gst-launch text from the command line. The field is private so that nothing but
/// [`raw`] (called by the CLI for `--pipeline`) can make one; the twin path cannot.
#[derive(Clone, PartialEq)]
pub struct RawLaunch(String);

impl RawLaunch {
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RawLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawLaunch({:?})", redact::text(&self.0))
    }
}

impl SourceSpec {
    /// A one-line, redacted description of the head, for logs and errors.
    pub fn describe(&self) -> String {
        match &self.head {
            SourceHead::Element(e) => e.to_string(),
            SourceHead::Launch(l) => redact::text(l.text()),
        }
    }
}

/// Turns `--source` (a path, a URL, a device, or a preset name) plus `--set k=v` into a pipeline head.
pub fn resolve(
    source: &str,
    overrides: &BTreeMap<String, String>,
    presets_dir: Option<&Path>,
) -> Result<SourceSpec, IngestError> {
    // GStreamer takes C strings: a NUL would cut a value (or trip glib's checks), and no
    // URI, path or property value needs control characters.
    let bad = |v: &str| v.chars().any(char::is_control);
    if bad(source) {
        return Err(IngestError::ControlCharacter { what: "uri".into() });
    }
    if let Some((k, _)) = overrides.iter().find(|(k, v)| bad(k) || bad(v)) {
        return Err(IngestError::ControlCharacter {
            what: format!("parameter '{}'", k.escape_debug()),
        });
    }
    check_display_name(overrides)?;
    let all = presets(presets_dir)?;
    let mut params = overrides.clone();
    let lower = source.to_ascii_lowercase();
    let (preset_name, name) = if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
        params
            .entry("uri".into())
            .or_insert_with(|| source.to_string());
        ("rtsp".to_string(), redact::url(source))
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
            // `admin:pw@cam` (scheme forgotten) lands here.
            name: redact::uri(source),
            available: all.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    let preset = all
        .get(&preset_name)
        .ok_or_else(|| IngestError::UnknownPreset {
            name: preset_name.clone(),
            available: all.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
    let element = preset.fill(&preset_name, &params)?;
    check(&element)?;
    Ok(SourceSpec {
        name: params.get("name").cloned().unwrap_or(name),
        preset: preset_name,
        live: preset.live,
        head: SourceHead::Element(element),
    })
}

/// `params.name` is the source's name in every message's properties and in the logs: the
/// same rule as the twin's `sources` keys, not up to 2048 characters of anything.
fn check_display_name(params: &BTreeMap<String, String>) -> Result<(), IngestError> {
    let Some(name) = params.get("name") else {
        return Ok(());
    };
    let mut errors = Vec::new();
    let max = crate::defaults::MAX_SOURCE_NAME;
    crate::control::config::check_name(&mut errors, "source parameter 'name'", name, max);
    match errors.pop() {
        // The rule's text quotes the name, which may be a pasted URL.
        Some(e) => Err(IngestError::BadName(redact::text(&e))),
        None => Ok(()),
    }
}

/// Makes the source's elements and sets their typed properties, then drops them: a value of
/// the wrong type fails here, when the twin patch or the command line is validated, rather
/// than later in the ingest thread. Nothing opens until a pipeline plays.
pub fn check(spec: &ElementSpec) -> Result<(), IngestError> {
    init()?;
    presets::make_source(spec)?;
    presets::source_caps(spec)?;
    Ok(())
}

/// A raw gst-launch head given on the command line (`--pipeline`). The twin has no way here.
pub fn raw(launch: &str, live: bool, name: &str) -> SourceSpec {
    SourceSpec {
        name: name.to_string(),
        preset: "raw".into(),
        live,
        head: SourceHead::Launch(RawLaunch(launch.to_string())),
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
    redact::uri(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(spec: &SourceSpec) -> &ElementSpec {
        match &spec.head {
            SourceHead::Element(e) => e,
            SourceHead::Launch(_) => panic!("a preset resolved to launch text"),
        }
    }

    fn value<'a>(spec: &'a SourceSpec, property: &str) -> Option<&'a str> {
        element(spec)
            .properties
            .iter()
            .find(|s| s.name == property)
            .map(|s| s.value.as_str())
    }

    #[test]
    fn resolves_urls_devices_and_presets() {
        let none = BTreeMap::new();
        let r = resolve("rtsp://user:pw@127.0.0.1:8554/cam", &none, None).unwrap();
        assert_eq!(r.preset, "rtsp");
        assert!(r.live);
        assert_eq!(r.name, "rtsp://***@127.0.0.1:8554/cam");
        assert_eq!(element(&r).element, "rtspsrc");
        assert_eq!(
            value(&r, "location"),
            Some("rtsp://user:pw@127.0.0.1:8554/cam")
        );
        assert_eq!(value(&r, "latency"), Some("100"));
        assert!(!r.describe().contains("pw"), "{}", r.describe());
        let t = resolve("test", &none, None).unwrap();
        assert_eq!(value(&t, "pattern"), Some("ball"));
        let u = resolve("/dev/video2", &none, None).unwrap();
        assert_eq!(value(&u, "device"), Some("/dev/video2"));
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
    fn control_characters_are_refused_before_gstreamer_sees_them() {
        // Found by the source_resolve fuzz target: a NUL tripped glib's C-string check.
        let none = BTreeMap::new();
        let e = resolve("rtsp://u%%%%\0", &none, None).unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        let params = BTreeMap::from([("latency_ms".to_string(), "1\n2".to_string())]);
        assert!(resolve("rtsp://127.0.0.1:1/x", &params, None).is_err());
    }

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
        for forgot_scheme in ["admin:secret@cam", "admin:secret@cam.local/s"] {
            let e = resolve(forgot_scheme, &none, None).unwrap_err().to_string();
            assert!(!e.contains("secret") && e.contains("***@cam"), "{e}");
        }
        let e = resolve("/no/such/v?x#y.mp4", &none, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/v?x#y.mp4"), "{e}");
    }

    #[test]
    fn a_display_name_follows_the_source_name_rule() {
        let with = |n: &str| BTreeMap::from([("name".to_string(), n.to_string())]);
        let r = resolve("test", &with("door-1"), None).unwrap();
        assert_eq!(r.name, "door-1");
        for (bad, says) in [
            ("x".repeat(2048), "1..64 characters"),
            (String::new(), "1..64 characters"),
            ("rtsp://u:pw@cam/s".to_string(), "may only hold letters"),
            ("a b".to_string(), "may only hold letters"),
            (".hidden".to_string(), "may not start with '.'"),
        ] {
            let e = resolve("test", &with(&bad), None).unwrap_err().to_string();
            assert!(e.contains("parameter 'name'") && e.contains(says), "{e}");
            assert!(e.len() < 300 && !e.contains("u:pw"), "{e}");
        }
    }

    #[test]
    fn a_non_integer_latency_is_refused_naming_the_parameter() {
        let mut p = BTreeMap::new();
        p.insert(
            "latency_ms".to_string(),
            "\" ! filesink location=/tmp/x".to_string(),
        );
        let e = resolve("rtsp://127.0.0.1:1/x", &p, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'latency_ms'") && e.contains("'latency'") && e.contains("unsigned integer"),
            "{e}"
        );
    }

    #[test]
    fn errors_never_carry_camera_credentials() {
        let mut p = BTreeMap::new();
        p.insert("latency_ms".to_string(), "soon".to_string());
        p.insert("nosuch".to_string(), "1".to_string());
        let src = "rtsp://user:p@ss@127.0.0.1:1/x";
        let unknown = resolve(src, &p, None).unwrap_err().to_string();
        p.remove("nosuch");
        let bad = resolve(src, &p, None).unwrap_err().to_string();
        let build = IngestError::Build {
            what: raw(&format!("rtspsrc location={src}"), true, "x").describe(),
            message: redact::text(&format!("could not open {src}")),
        }
        .to_string();
        for e in [unknown, bad, build] {
            assert!(!e.contains("user") && !e.contains("p@ss"), "{e}");
        }
    }
}
