//! Reported properties and stats: what the module tells the cloud. Secrets never get here:
//! URIs are redacted and reasons pass through `redact::text`.

use serde_json::{json, Value};

use super::config::{DesiredConfig, ModelConfig};
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

/// `config`: the effective config, with the model that serves (not the one loading).
pub fn config(applied: &DesiredConfig, serving: &ModelConfig) -> Value {
    let mut c = applied.clone();
    let mut m = serving.clone();
    m.uri = m.uri.as_deref().map(crate::redact::url);
    c.model = Some(m);
    serde_json::to_value(&c).unwrap_or(Value::Null)
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

#[cfg(test)]
mod tests {
    use super::*;

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
