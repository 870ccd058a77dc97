//! Reported properties and stats: what the module tells the cloud. Secrets never get here:
//! URIs are redacted and reasons pass through `redact::text`.

use serde_json::{json, Value};

use super::config::{DesiredConfig, ModelConfig, SourceConfig};
use super::model_load::ModelStatus;
use crate::mqtt::SessionStats;
use crate::pipeline::StatsSnapshot;

pub use crate::message::now_iso;

/// `lastDesired`: the outcome of the last desired document, applied or rejected.
pub fn last_desired(version: Option<i64>, rejected: Option<&str>) -> Value {
    let (status, reason) = match rejected {
        Some(r) => ("rejected", Value::String(crate::redact::text(r))),
        None => ("applied", Value::Null),
    };
    json!({"version": version, "status": status, "reason": reason, "at": now_iso()})
}

/// Largest `config` echo: IoT Hub takes at most 32 KB of reported properties in all, and
/// 256 shapes of 64 points would be several hundred KB.
pub const MAX_CONFIG_ECHO: usize = 16 * 1024;

/// `config`: the effective config, with the model that serves (not the one loading). Past
/// [`MAX_CONFIG_ECHO`], zones and lines (top level and per source) are echoed by name only.
pub fn config(applied: &DesiredConfig, serving: &ModelConfig) -> Value {
    let mut c = applied.clone();
    let mut m = serving.clone();
    m.uri = m.uri.as_deref().map(crate::redact::url);
    c.model = Some(m);
    c.source.iter_mut().for_each(redact_source);
    c.sources
        .iter_mut()
        .flatten()
        .for_each(|(_, s)| redact_source(s));
    let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
    if v.to_string().len() > MAX_CONFIG_ECHO {
        names_only(&mut v);
        if let Some(sources) = v.get_mut("sources").and_then(Value::as_object_mut) {
            sources.values_mut().for_each(names_only);
        }
    }
    v
}

/// A camera's uri and params as they may be shown: no userinfo, no query, no secret param.
fn redact_source(s: &mut SourceConfig) {
    s.uri = s.uri.as_deref().map(crate::redact::uri);
    for (k, v) in s.params.iter_mut().flatten() {
        *v = crate::redact::param(k, v);
    }
}

/// `zones`/`lines` maps become lists of their names.
fn names_only(v: &mut Value) {
    for key in ["zones", "lines"] {
        if let Some(shapes) = v.get_mut(key) {
            let names: Vec<Value> = shapes
                .as_object()
                .map(|o| o.keys().map(|k| Value::String(k.clone())).collect())
                .unwrap_or_default();
            *shapes = json!({ "names": names, "omitted": "too large to echo; see desired" });
        }
    }
}

pub fn model(status: &ModelStatus) -> Value {
    serde_json::to_value(status).unwrap_or(Value::Null)
}

/// `stats`: the pipeline's counters plus the outbox's.
pub fn stats(pipeline: Option<StatsSnapshot>, session: &SessionStats) -> Value {
    let mut v = pipeline
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}));
    let out = &session.outbox;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "outboxQueued".into(),
            json!(out.queued + out.inflight + out.control.queued),
        );
        o.insert("outboxDropped".into(), json!(out.dropped));
        o.insert("outboxDroppedBytes".into(), json!(out.dropped_bytes));
        o.insert("published".into(), json!(out.acked));
        o.insert("connects".into(), json!(session.connects));
    }
    v
}

/// The reported patch that makes the hub's `old` into `new`. The hub merges patches (RFC
/// 7396), so a key `new` lacks would stay: it gets a null, at any depth (a removed source, a
/// param, a zone).
pub fn replacing(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out: serde_json::Map<String, Value> = n
                .iter()
                .map(|(k, v)| (k.clone(), replacing(o.get(k).unwrap_or(&Value::Null), v)))
                .collect();
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_nulls_what_is_gone_and_merges_into_exactly_new() {
        let old = json!({
            "sources": {"a": {"uri": "test", "params": {"fps": "5"}}, "b": {"uri": "test"}},
            "detection": {"classes": ["person"], "minConfidence": 0.5},
            "model": "was a string"
        });
        let new = json!({
            "sources": {"a": {"uri": "test"}},
            "detection": {"minConfidence": 0.6},
            "model": {"name": "m"}
        });
        let patch = replacing(&old, &new);
        assert_eq!(patch["sources"]["b"], Value::Null);
        assert_eq!(patch["sources"]["a"]["params"], Value::Null);
        assert_eq!(patch["detection"]["classes"], Value::Null);
        let mut merged = old.clone();
        super::super::config::merge(&mut merged, &patch);
        assert_eq!(merged, new);
        // Nothing known about the hub's copy: the patch is `new` itself.
        assert_eq!(replacing(&Value::Null, &new), new);
    }

    #[test]
    fn a_large_scene_is_echoed_by_names() {
        let polygon: Vec<[f32; 2]> = (0..64).map(|i| [i as f32 / 64.0, 0.5]).collect();
        let zones: serde_json::Map<String, Value> = (0..32)
            .map(|i| (format!("z{i}"), json!({"polygon": polygon})))
            .collect();
        let applied: DesiredConfig = serde_json::from_value(json!({
            "zones": zones,
            "sources": {"a": {"uri": "samples/vtest.mp4", "zones": zones}}
        }))
        .unwrap();
        let v = config(&applied, &ModelConfig::default());
        assert!(
            v.to_string().len() <= MAX_CONFIG_ECHO,
            "{}",
            v.to_string().len()
        );
        assert_eq!(v["zones"]["names"].as_array().unwrap().len(), 32);
        assert_eq!(v["sources"]["a"]["zones"]["names"][0], "z0");
        // A small scene is echoed whole.
        let small: DesiredConfig =
            serde_json::from_value(json!({"zones": {"d": {"polygon": [[0,0],[1,0],[1,1]]}}}))
                .unwrap();
        assert!(config(&small, &ModelConfig::default())["zones"]["d"]["polygon"].is_array());
    }

    /// Found by review (rev-input): the source uri (CLI `--source` or twin) was echoed with
    /// its camera password; params too.
    #[test]
    fn reported_config_carries_no_camera_password() {
        let applied: DesiredConfig = serde_json::from_value(json!({
            "source": {"uri": "rtsp://admin:SECRET1@cam.local:554/s",
                       "params": {"latency_ms": "200", "user-pw": "SECRET3"}},
            "sources": {"door": {"uri": "rtsp://admin:SE/CRET2@door.local/s",
                                 "params": {"uri": "rtsp://u:SECRET4@x/s"}},
                        "file": {"uri": "samples/vtest.mp4"}}
        }))
        .expect("a valid config");
        let v = config(&applied, &ModelConfig::default());
        let s = v.to_string();
        for secret in ["SECRET1", "SE/CRET2", "CRET2", "SECRET3", "SECRET4"] {
            assert!(!s.contains(secret), "reported config leaks {secret}: {s}");
        }
        // Still useful: hosts, paths, keys and plain values stay readable.
        assert_eq!(v["source"]["uri"], "rtsp://***@cam.local:554/s");
        assert_eq!(v["source"]["params"]["latency_ms"], "200");
        assert_eq!(v["source"]["params"]["user-pw"], "***");
        assert_eq!(v["sources"]["door"]["uri"], "rtsp://***@door.local/s");
        assert_eq!(v["sources"]["door"]["params"]["uri"], "rtsp://***@x/s");
        assert_eq!(v["sources"]["file"]["uri"], "samples/vtest.mp4");
    }

    /// Found by review (rev-input): a twin `source` given as a string is refused with serde's
    /// text, which quotes it; a password holding '(' or '\'' escaped `redact::text`.
    #[test]
    fn a_rejected_reason_never_carries_a_camera_password() {
        for uri in [
            "rtsp://admin:pa(ss)@cam.local/s",
            "rtsp://admin:it's@cam.local/s",
            "rtsp://admin:a\"b/c@cam.local/s",
        ] {
            let errors = super::super::config::parse(&json!({ "source": uri })).unwrap_err();
            let r = last_desired(Some(2), Some(&errors.join("; "))).to_string();
            let secret = &uri["rtsp://admin:".len()..uri.rfind('@').unwrap()];
            assert!(!r.contains(secret), "lastDesired leaks '{secret}': {r}");
            assert!(r.contains("cam.local/s"), "{r}");
        }
    }

    #[test]
    fn reported_config_carries_no_sas_token() {
        let serving = ModelConfig {
            uri: Some("https://h/m.tar.gz?sv=1&sig=SECRET".into()),
            ..Default::default()
        };
        let v = config(&DesiredConfig::default(), &serving).to_string();
        assert!(!v.contains("SECRET"), "{v}");
        assert!(v.contains("https://h/m.tar.gz"), "{v}");
        let r = last_desired(Some(3), Some("cannot fetch https://h/x?sig=SECRET")).to_string();
        assert!(!r.contains("SECRET"), "{r}");
    }
}
