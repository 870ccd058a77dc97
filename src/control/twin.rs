//! What EdgeHub sends the module: twin GET answers, desired patches, direct methods.
//! Documents go through `apply::plan`; this file only carries the plan out and reports.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::apply::{self, Current};
use super::model_load::{LoadDone, ModelState, ModelStatus};
use super::{live_settings, output_name, report, sources, Module};
use crate::defaults;
use crate::edgehub::{topics, TwinEvent};
use crate::mqtt::{ControlKind, SessionEvent};

impl Module {
    pub(super) fn on_event(&mut self, ev: SessionEvent) {
        match ev {
            // Patches may have been missed while offline: always read the whole twin.
            SessionEvent::Connected => self.send_twin_get(),
            SessionEvent::Disconnected(reason) => {
                tracing::debug!(%reason, "EdgeHub disconnected");
                // The answer will not come; the next Connected asks again.
                self.twin_get.pending = None;
            }
            SessionEvent::Message { topic, payload } => self.on_message(&topic, &payload),
        }
    }

    fn send_twin_get(&mut self) {
        let rid = self.next_rid();
        self.twin_get.pending = Some((rid.clone(), Instant::now()));
        self.twin_get.retry_at = None;
        let sent =
            self.session
                .publish_control(ControlKind::TwinGet, topics::twin_get(&rid), Vec::new());
        if let Err(e) = sent {
            tracing::error!(error = %e, "twin GET not sent");
        }
    }

    /// A failed or unanswered twin GET is retried with backoff: without it the module would
    /// run on the command line's config until the next reconnect.
    fn twin_get_failed(&mut self, why: &str) {
        let b = &mut self.twin_get;
        b.pending = None;
        b.backoff = if b.backoff.is_zero() {
            defaults::TWIN_GET_RETRY
        } else {
            (b.backoff * 2).min(defaults::BACKOFF_MAX)
        };
        b.retry_at = Some(Instant::now() + b.backoff);
        tracing::warn!(reason = why, retry_in = ?b.backoff, "twin GET failed; retrying");
    }

    pub(super) fn supervise_twin_get(&mut self) {
        let timed_out = self
            .twin_get
            .pending
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() > defaults::TWIN_GET_TIMEOUT);
        if timed_out {
            self.twin_get_failed("no answer");
        }
        if self.twin_get.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.send_twin_get();
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        match TwinEvent::parse(topic, payload) {
            Some(TwinEvent::Response { status, rid, body }) => {
                if self
                    .twin_get
                    .pending
                    .as_ref()
                    .is_some_and(|(r, _)| r == rid)
                {
                    self.on_twin(status, body);
                } else if !(200..300).contains(&status) {
                    tracing::warn!(
                        status,
                        rid,
                        "reported properties update rejected by EdgeHub"
                    );
                }
            }
            Some(TwinEvent::DesiredPatch { version, body }) => self.on_patch(version, body),
            Some(TwinEvent::MethodCall { name, rid, .. }) => {
                let (status, body) = self.on_method(name);
                let sent = self.session.publish_control(
                    ControlKind::MethodResponse,
                    topics::method_response(status, rid),
                    serde_json::to_vec(&body).unwrap_or_default(),
                );
                if let Err(e) = sent {
                    // Still answer, so the caller does not wait for its timeout.
                    tracing::warn!(error = %e, method = name, "method response not sent");
                    let _ = self.session.publish_control(
                        ControlKind::MethodResponse,
                        topics::method_response(500, rid),
                        json!({"message": e.to_string()}).to_string().into_bytes(),
                    );
                }
            }
            Some(TwinEvent::Input { input, .. }) => {
                tracing::debug!(input, "message on an input ignored")
            }
            None => tracing::debug!(topic, "unrecognised message from EdgeHub ignored"),
        }
    }

    /// The hub merges every patch into desired, accepted or not, and so does `desired_doc`:
    /// after a rejected patch, the fix that follows applies all of desired, the rejected
    /// patch's valid fields included, as a twin GET after a reconnect would.
    fn on_patch(&mut self, version: Option<i64>, body: &[u8]) {
        let Some(desired) = &self.desired_doc else {
            // Desired is not known yet (or was dropped); the pending twin GET's answer holds
            // this patch too.
            tracing::info!(
                ?version,
                "desired patch before the twin GET answer; the answer holds it"
            );
            return;
        };
        let merged = serde_json::from_slice::<Value>(body)
            .map_err(|e| format!("desired patch is not JSON: {e}"))
            .and_then(|patch| apply::patched(desired, &patch));
        let doc = match merged {
            Ok(doc) => doc,
            // Not a JSON object: the hub cannot have merged it either, so desired is as it was.
            Err(reason) => return self.reject(version, &reason, "patch"),
        };
        let size = serde_json::to_vec(&doc).map_or(usize::MAX, |b| b.len());
        if size > defaults::DESIRED_MIRROR_MAX_BYTES {
            // A bound on what the module keeps; the hub's own copy is the truth: read it again.
            self.desired_doc = None;
            self.reject(version, &format!("desired properties grew to {size} bytes; at most {}: remove what edgelens does not read", defaults::MAX_DESIRED_BYTES), "patch");
            return self.send_twin_get();
        }
        self.desired_doc = Some(doc.clone());
        self.apply_document(doc, version, "patch");
    }

    fn on_twin(&mut self, status: u16, payload: &[u8]) {
        if status != 200 {
            return self.twin_get_failed(&format!("status {status}"));
        }
        let twin = match serde_json::from_slice::<Value>(payload) {
            Ok(t) if t.is_object() => t,
            _ => return self.twin_get_failed("the answer is not a JSON object"),
        };
        self.twin_get = Default::default();
        // What a previous run left reported: the next echo replaces it, key by key.
        self.reported_config = twin
            .pointer("/reported/config")
            .cloned()
            .unwrap_or(Value::Null);
        let desired = twin.get("desired").cloned().unwrap_or_else(|| json!({}));
        self.desired_doc = Some(desired.clone());
        let version = desired.get("$version").and_then(Value::as_i64);
        if version.is_some() && version == self.desired_version {
            tracing::info!(?version, "twin unchanged since last applied");
            let r = self.full_report();
            self.report(r);
        } else {
            self.apply_document(desired, version, "twin");
        }
    }

    fn on_method(&mut self, name: &str) -> (u16, Value) {
        match name {
            "getStats" => (200, self.stats_json()),
            "snapshot" => {
                let latest = self
                    .pipeline
                    .as_ref()
                    .and_then(|p| p.latest.lock().ok().and_then(|l| l.clone()));
                match latest {
                    Some(m) => (200, serde_json::to_value(m).unwrap_or(Value::Null)),
                    None => (404, json!({"message": "no frame inferred yet"})),
                }
            }
            other => (
                404,
                json!({"message": format!("unknown method '{}'; available: getStats, snapshot", super::config::truncate(other))}),
            ),
        }
    }

    fn reject(&mut self, version: Option<i64>, reason: &str, origin: &str) {
        tracing::warn!(?version, reason = %crate::redact::text(reason), origin, "desired properties rejected; running config unchanged");
        self.report(json!({"lastDesired": report::last_desired(version, Some(reason))}));
    }

    /// Validates the whole candidate desired document, then carries out the plan.
    fn apply_document(&mut self, doc: Value, version: Option<i64>, origin: &str) {
        let target = self.applied.model.clone().unwrap_or_default();
        let current = Current {
            base: &self.opts.initial,
            applied: &self.applied,
            model_target: &target,
        };
        // A source that cannot resolve is a validation failure, not a runtime one.
        let planned = apply::plan(&doc, current).and_then(|p| {
            let specs = sources::resolve(&p.config, &self.opts).map_err(|e| vec![e.to_string()])?;
            Ok((p, specs))
        });
        let (plan, specs) = match planned {
            Ok(x) => x,
            Err(errors) => return self.reject(version, &errors.join("; "), origin),
        };
        self.desired_version = version;
        self.applied = plan.config.clone();
        if plan.settings_changed || plan.restart_source {
            self.settings
                .store(Arc::new(live_settings(&plan.config, &specs)));
            self.output.store(Arc::new(output_name(&plan.config)));
        }
        self.apply_sources(&plan, specs);
        match plan.load_model {
            // Back to the model that serves: nothing to load, whatever was loading or failed.
            Some(model) if model == self.serving => {
                self.loader.supersede();
                self.model_status = self.serving_status.clone();
            }
            Some(model) => {
                self.model_status = ModelStatus::for_config(ModelState::Loading, &model, None);
                self.loader.request(model);
            }
            None => {}
        }
        tracing::info!(?version, origin, "desired properties applied");
        let mut r = self.full_report();
        if let Some(o) = r.as_object_mut() {
            o.insert("lastDesired".into(), report::last_desired(version, None));
        }
        self.report(r);
    }

    pub(super) fn on_loaded(&mut self, done: LoadDone) {
        if !self.loader.is_current(&done) {
            return; // a newer request superseded this one
        }
        match done.result {
            Ok((engine, load_ms)) => {
                self.model_status = ModelStatus::ready(&engine, load_ms);
                self.serving_status = self.model_status.clone();
                tracing::info!(model = %engine.model().manifest.name, backend = engine.backend_name(), load_ms, "model swapped in");
                if let Ok(mut d) = self.serving_dir.lock() {
                    *d = vec![engine.model().dir.clone()];
                }
                // The swap: the inference thread picks it up at its next frame.
                self.engine.store(Arc::new(engine));
                // Give the old engine's memory back once the inference thread has let go.
                self.trim_at = Some(std::time::Instant::now() + std::time::Duration::from_secs(3));
                self.serving = done.config;
            }
            Err(reason) => {
                tracing::warn!(reason = %crate::redact::text(&reason), "model load failed; the previous model keeps serving");
                self.model_status =
                    ModelStatus::for_config(ModelState::Failed, &done.config, Some(reason));
            }
        }
        let r = json!({
            "config": report::config(&self.applied, &self.serving),
            "model": report::model(&self.model_status),
        });
        self.report(r);
    }
}
