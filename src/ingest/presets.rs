//! Presets (`pipelines/<name>.toml`) name a GStreamer element and its properties; they are
//! data, never launch text. Values from `--set` or the twin's `source.params` fill the presets'
//! `{placeholders}` and reach GStreamer only as typed property values: each is parsed into the
//! type the element declares for that property (its GParamSpec) or refused with an error that
//! names the parameter, the property and the expected type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Deserialize;

use super::IngestError;
use crate::redact;

/// A preset as written in `pipelines/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    #[serde(default)]
    pub description: String,
    pub live: bool,
    /// The source element's factory name (`rtspsrc`, `uridecodebin`, `v4l2src`, ...).
    pub element: String,
    /// The source emits encoded video: a `decodebin` follows it.
    #[serde(default)]
    pub decode: bool,
    /// Source element properties; values may hold `{placeholders}`.
    #[serde(default)]
    pub properties: BTreeMap<String, toml::Value>,
    /// Optional `video/x-raw` caps right after the source (fields: width, height, framerate,
    /// pixel-aspect-ratio, format).
    #[serde(default)]
    pub caps: BTreeMap<String, toml::Value>,
    /// Placeholder values used when neither `--set` nor the twin gives one.
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
}

/// A preset with its placeholders filled: what gets built. Values are still strings; their
/// types come from the element when it is built.
#[derive(Clone, PartialEq)]
pub struct ElementSpec {
    pub element: String,
    pub decode: bool,
    pub properties: Vec<Setting>,
    pub caps: Vec<Setting>,
}

/// One property (or caps field) and its value, with the parameters that filled it.
#[derive(Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    /// Placeholder keys the value came from (`latency_ms`); empty for preset literals.
    pub from: Vec<String>,
}

// Values may hold camera passwords, in a URL or as a property of their own (`user-pw`):
// Debug output is redacted.
impl std::fmt::Debug for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?}",
            self.name,
            redact::param(&self.name, &self.value)
        )
    }
}

impl std::fmt::Debug for ElementSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementSpec")
            .field("element", &self.element)
            .field("decode", &self.decode)
            .field("properties", &self.properties)
            .field("caps", &self.caps)
            .finish()
    }
}

impl std::fmt::Display for ElementSpec {
    /// A redacted one-line description for logs: `rtspsrc location=rtsp://***@cam/s latency=100`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.element)?;
        for s in &self.properties {
            write!(f, " {}={}", s.name, redact::param(&s.name, &s.value))?;
        }
        if self.decode {
            write!(f, " (decodebin)")?;
        }
        Ok(())
    }
}

/// Presets compiled into the binary, so a container needs no files beside it.
const BUILTIN: &[(&str, &str)] = &[
    ("file", include_str!("../../pipelines/file.toml")),
    ("rtsp", include_str!("../../pipelines/rtsp.toml")),
    ("usb", include_str!("../../pipelines/usb.toml")),
    ("test", include_str!("../../pipelines/test.toml")),
];

/// Parameters every preset takes besides its placeholders: `name` sets the display name.
const COMMON_PARAMS: &[&str] = &["name"];

/// Presets: built-ins, overridden or extended by `*.toml` in `dir` when given.
pub fn presets(dir: Option<&Path>) -> Result<BTreeMap<String, Preset>, IngestError> {
    let mut out = BTreeMap::new();
    for (name, text) in BUILTIN {
        out.insert(name.to_string(), parse(Path::new(name), text)?);
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
            let text = std::fs::read_to_string(&path).map_err(|e| IngestError::BadPreset {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let preset = parse(&path, &text)?;
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.insert(stem.to_string(), preset);
            }
        }
    }
    Ok(out)
}

fn parse(path: &Path, text: &str) -> Result<Preset, IngestError> {
    let bad = |message: String| IngestError::BadPreset {
        path: PathBuf::from(path),
        message,
    };
    let p: Preset = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
    let values = p.properties.iter().chain(&p.caps).chain(&p.defaults);
    for (key, v) in values {
        if scalar(v).is_none() {
            return Err(bad(format!("'{key}' must be a string, number or boolean")));
        }
    }
    Ok(p)
}

/// A TOML scalar as the string GStreamer's types are parsed from.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Preset {
    /// The `{placeholders}` this preset's properties and caps use.
    pub fn placeholders(&self) -> BTreeSet<String> {
        self.properties
            .values()
            .chain(self.caps.values())
            .filter_map(scalar)
            .flat_map(|t| keys(&t))
            .collect()
    }

    /// Fills the placeholders from `params` over `defaults`. Keys the preset does not take
    /// are refused, so a typo or a stray twin value never passes silently.
    pub fn fill(
        &self,
        preset: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<ElementSpec, IngestError> {
        let known = self.placeholders();
        if let Some(key) = params
            .keys()
            .find(|k| !known.contains(*k) && !COMMON_PARAMS.contains(&k.as_str()))
        {
            let mut takes: Vec<&str> = known.iter().map(String::as_str).collect();
            takes.extend(COMMON_PARAMS);
            takes.sort_unstable();
            return Err(IngestError::UnknownParam {
                preset: preset.to_string(),
                key: redact::text(key).chars().take(64).collect(),
                known: takes.join(", "),
            });
        }
        let mut values: BTreeMap<String, String> = self
            .defaults
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
            .collect();
        values.extend(params.clone());
        let fill_all = |m: &BTreeMap<String, toml::Value>| -> Result<Vec<Setting>, IngestError> {
            m.iter()
                .map(|(name, v)| {
                    let template = scalar(v).unwrap_or_default();
                    Ok(Setting {
                        name: name.clone(),
                        value: substitute(&template, &values, preset)?,
                        from: keys(&template),
                    })
                })
                .collect()
        };
        Ok(ElementSpec {
            element: self.element.clone(),
            decode: self.decode,
            properties: fill_all(&self.properties)?,
            caps: fill_all(&self.caps)?,
        })
    }
}

/// Placeholder keys in a template, in order.
fn keys(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Replaces `{key}`s. Values are inserted verbatim and never scanned again.
fn substitute(
    template: &str,
    values: &BTreeMap<String, String>,
    preset: &str,
) -> Result<String, IngestError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        let key = &after[..end];
        let value = values
            .get(key)
            .ok_or_else(|| IngestError::MissingPlaceholder {
                preset: preset.to_string(),
                key: key.to_string(),
            })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Makes the source element and sets its typed properties.
pub(super) fn make_source(spec: &ElementSpec) -> Result<gst::Element, IngestError> {
    let element = make(&spec.element)?;
    for s in &spec.properties {
        let pspec = element
            .find_property(&s.name)
            .ok_or_else(|| bad_value(spec, s, "a property this element has".into()))?;
        let value = super::typed::value(&pspec, &s.value)
            .map_err(|expected| bad_value(spec, s, expected))?;
        element.set_property_from_value(&s.name, &value);
    }
    Ok(element)
}

/// The `video/x-raw` caps a preset puts right after its source, if any.
pub(super) fn source_caps(spec: &ElementSpec) -> Result<Option<gst::Caps>, IngestError> {
    if spec.caps.is_empty() {
        return Ok(None);
    }
    let mut s = gst::Structure::new_empty("video/x-raw");
    for c in &spec.caps {
        let value = super::typed::caps_field(&c.name, &c.value)
            .map_err(|expected| bad_value(spec, c, expected))?;
        s.set_value(c.name.as_str(), value);
    }
    Ok(Some(gst::Caps::builder_full().structure(s).build()))
}

/// An element by factory name, with an error that says which plugin is missing.
pub(super) fn make(factory: &str) -> Result<gst::Element, IngestError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| IngestError::NoElement {
            element: factory.chars().take(64).collect(),
        })
}

fn bad_value(spec: &ElementSpec, s: &Setting, expected: String) -> IngestError {
    IngestError::BadValue {
        param: if s.from.is_empty() {
            s.name.clone()
        } else {
            s.from.join(", ")
        },
        element: spec.element.clone(),
        property: s.name.clone(),
        value: shorten(&redact::param(&s.name, &s.value)),
        expected,
    }
}

/// Hostile values can be long; errors end up in reported properties.
fn shorten(v: &str) -> String {
    if v.chars().count() <= 64 {
        v.to_string()
    } else {
        format!("{}...", v.chars().take(61).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builtin_presets_parse_and_list_their_placeholders() {
        let all = presets(None).expect("presets");
        let rtsp = &all["rtsp"];
        assert_eq!(rtsp.element, "rtspsrc");
        assert!(rtsp.decode);
        let p: Vec<String> = rtsp.placeholders().into_iter().collect();
        assert_eq!(p, ["latency_ms", "uri"]);
        assert!(all["test"].placeholders().contains("fps"));
    }

    #[test]
    fn values_are_inserted_verbatim_and_never_rescanned() {
        let all = presets(None).expect("presets");
        let hostile = "rtsp://h/x\\\" ! filesink location=/tmp/x {latency_ms}";
        let spec = all["rtsp"]
            .fill("rtsp", &params(&[("uri", hostile)]))
            .expect("fill");
        let location = spec.properties.iter().find(|s| s.name == "location");
        assert_eq!(location.map(|s| s.value.as_str()), Some(hostile));
        let latency = spec.properties.iter().find(|s| s.name == "latency");
        assert_eq!(
            latency.map(|s| s.from.clone()),
            Some(vec!["latency_ms".into()])
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let all = presets(None).expect("presets");
        let e = all["rtsp"]
            .fill("rtsp", &params(&[("uri", "rtsp://h/"), ("latncy_ms", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'latncy_ms'") && e.contains("latency_ms, name, uri"),
            "{e}"
        );
        let e = all["rtsp"]
            .fill("rtsp", &params(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("{uri}"), "{e}");
    }

    #[test]
    fn debug_and_display_hide_camera_passwords() {
        let all = presets(None).expect("presets");
        let spec = all["rtsp"]
            .fill(
                "rtsp",
                &params(&[("uri", "rtsp://user:p@ss@127.0.0.1:1/x")]),
            )
            .expect("fill");
        for text in [format!("{spec:?}"), spec.to_string()] {
            assert!(!text.contains("user") && !text.contains("p@ss"), "{text}");
            assert!(text.contains("127.0.0.1:1/x"), "{text}");
        }
    }

    #[test]
    fn nested_values_in_a_preset_are_refused() {
        let e = parse(
            Path::new("x.toml"),
            "live = true\nelement = \"videotestsrc\"\n[properties]\npattern = [1]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'pattern'"), "{e}");
    }
}
