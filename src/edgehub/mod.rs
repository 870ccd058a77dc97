//! EdgeHub protocol glue on top of the `mqtt` room: the module's identity (`identity`,
//! `sas`, `workload`), the hub's topics (`topics`), and what the hub sends parsed into a
//! [`TwinEvent`] (`twin`).

use std::sync::Arc;

use arc_swap::ArcSwap;

pub mod identity;
pub mod sas;
pub mod topics;
pub mod twin;
pub mod workload;

pub use identity::{ModuleIdentity, Signer};
pub use twin::TwinEvent;

use crate::defaults;
use crate::mqtt::{
    CredentialsFn, MqttError, OutboxConfig, QueueLimits, Session, SessionConfig, SessionEvent,
};
use crate::publish::session::SessionSink;

#[derive(Debug, thiserror::Error)]
pub enum EdgeHubError {
    #[error("IoT Edge configuration: {0}")]
    Config(String),
    #[error("workload API: {0}")]
    Workload(String),
    #[error("trust bundle: {0}")]
    Tls(String),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
}

/// Connects to EdgeHub; events (connects, twin responses, patches, methods) arrive on `events`.
pub fn connect(
    id: &ModuleIdentity,
    queue: QueueLimits,
    events: crossbeam_channel::Sender<SessionEvent>,
) -> Result<Session, EdgeHubError> {
    let ident = id.clone();
    let credentials: CredentialsFn = Arc::new(move || {
        let token = ident.sas_token().map_err(|e| e.to_string())?;
        tracing::debug!(expires_in_s = ident.token_ttl.as_secs(), "new SAS token");
        Ok(Some((ident.username(), token)))
    });
    let config = SessionConfig {
        host: id.gateway.clone(),
        port: id.port,
        client_id: id.client_id(),
        credentials: Some(credentials),
        tls: Some(id.tls_config()?),
        keep_alive: defaults::EDGEHUB_KEEP_ALIVE,
        outbox: OutboxConfig {
            queue,
            ..OutboxConfig::default()
        },
        subscriptions: topics::subscriptions(&id.device, &id.module),
        // Renew before expiry: reconnect with a fresh token at 80% of its life.
        reconnect_after: Some(id.token_ttl.mul_f32(0.8)),
        backoff_start: defaults::BACKOFF_START,
        max_backoff: defaults::BACKOFF_MAX,
    };
    Ok(Session::start(config, Some(events))?)
}

/// Telemetry to an EdgeHub output; the output name may change live (twin `output.name`).
pub fn output_sink(
    session: Session,
    identity: Arc<ModuleIdentity>,
    output: Arc<ArcSwap<String>>,
) -> SessionSink {
    SessionSink::new(
        "edgehub",
        session,
        Box::new(move |msg| {
            let live = output.load();
            // Scene messages name their own output (`events`, `counts`).
            let name = msg.output.as_deref().unwrap_or(live.as_str());
            topics::output(&identity.device, &identity.module, name, &msg.properties)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn identity_strings_follow_the_edgehub_conventions() {
        let id = ModuleIdentity {
            hub: "hub.example".into(),
            device: "dev1".into(),
            module: "edgelens".into(),
            gateway: "127.0.0.1".into(),
            port: 8883,
            signer: Signer::Key("AAAA".into()),
            trust_bundle: None,
            token_ttl: Duration::from_secs(3600),
        };
        assert_eq!(
            id.username(),
            "hub.example/dev1/edgelens/?api-version=2018-06-30"
        );
        assert_eq!(id.client_id(), "dev1/edgelens");
        assert!(
            !format!("{id:?}").contains("AAAA"),
            "keys must not reach logs"
        );
    }
}
