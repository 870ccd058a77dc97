//! EdgeHub protocol glue: module identity from the IoT Edge environment, SAS tokens
//! from the workload API (or a connection string for local dev), MQTT 3.1.1 over TLS
//! trusting only the edge trust bundle, and the module's topics.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

pub mod sas;
pub mod workload;

use crate::publish::mqtt::{CredentialsFn, Session, SessionConfig, SessionEvent};
use crate::publish::{Outgoing, PublishError, Sink, SinkStats};
use workload::WorkloadClient;

#[derive(Debug, thiserror::Error)]
pub enum EdgeHubError {
    #[error("IoT Edge configuration: {0}")]
    Config(String),
    #[error("workload API: {0}")]
    Workload(String),
    #[error("trust bundle: {0}")]
    Tls(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// How the module proves who it is.
#[derive(Clone)]
pub enum Signer {
    Workload(WorkloadClient),
    /// Local dev: the key from `EdgeHubConnectionString`.
    Key(String),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Workload(w) => f.debug_tuple("Workload").field(w).finish(),
            Signer::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModuleIdentity {
    pub hub: String,
    pub device: String,
    pub module: String,
    pub gateway: String,
    pub port: u16,
    pub signer: Signer,
    /// PEM of the CA(s) to trust for EdgeHub.
    pub trust_bundle: Option<String>,
    pub token_ttl: Duration,
}

/// Port override for tests and unusual gateways; EdgeHub listens on 8883.
const PORT_VAR: &str = "EDGELENS_EDGEHUB_PORT";
const TTL_VAR: &str = "EDGELENS_SAS_TTL_SECS";

impl ModuleIdentity {
    /// True when this process was started by IoT Edge (or given the local-dev connection string).
    pub fn present() -> bool {
        std::env::var_os("IOTEDGE_WORKLOADURI").is_some()
            || std::env::var_os("EdgeHubConnectionString").is_some()
    }

    pub fn from_env() -> Result<ModuleIdentity, EdgeHubError> {
        let var =
            |k: &str| std::env::var(k).map_err(|_| EdgeHubError::Config(format!("{k} is not set")));
        let port = match std::env::var(PORT_VAR) {
            Ok(p) => p
                .parse()
                .map_err(|_| EdgeHubError::Config(format!("{PORT_VAR}='{p}' is not a port")))?,
            Err(_) => 8883,
        };
        let token_ttl = match std::env::var(TTL_VAR) {
            Ok(s) => {
                Duration::from_secs(s.parse::<u64>().ok().filter(|s| *s >= 2).ok_or_else(|| {
                    EdgeHubError::Config(format!("{TTL_VAR}='{s}' must be seconds >= 2"))
                })?)
            }
            Err(_) => Duration::from_secs(3600),
        };
        if let Ok(uri) = std::env::var("IOTEDGE_WORKLOADURI") {
            let module = var("IOTEDGE_MODULEID")?;
            let workload = WorkloadClient::new(&uri, &module, &var("IOTEDGE_MODULEGENERATIONID")?)?;
            if let Ok(scheme) = std::env::var("IOTEDGE_AUTHSCHEME") {
                if scheme != "sasToken" {
                    return Err(EdgeHubError::Config(format!(
                        "IOTEDGE_AUTHSCHEME '{scheme}' is not supported; use sasToken"
                    )));
                }
            }
            let trust_bundle = Some(workload.trust_bundle()?);
            return Ok(ModuleIdentity {
                hub: var("IOTEDGE_IOTHUBHOSTNAME")?,
                device: var("IOTEDGE_DEVICEID")?,
                module,
                gateway: var("IOTEDGE_GATEWAYHOSTNAME")?,
                port,
                signer: Signer::Workload(workload),
                trust_bundle,
                token_ttl,
            });
        }
        let cs = var("EdgeHubConnectionString")?;
        let field = |name: &str| {
            cs.split(';')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        };
        let need = |name: &str| {
            field(name).ok_or_else(|| {
                EdgeHubError::Config(format!("EdgeHubConnectionString lacks {name}="))
            })
        };
        let hub = need("HostName")?;
        let trust_bundle = match std::env::var("EdgeModuleCACertificateFile") {
            Ok(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                EdgeHubError::Tls(format!(
                    "cannot read EdgeModuleCACertificateFile {path}: {e}"
                ))
            })?),
            Err(_) => None,
        };
        Ok(ModuleIdentity {
            gateway: field("GatewayHostName").unwrap_or_else(|| hub.clone()),
            hub,
            device: need("DeviceId")?,
            module: need("ModuleId")?,
            port,
            signer: Signer::Key(need("SharedAccessKey")?),
            trust_bundle,
            token_ttl,
        })
    }

    pub fn client_id(&self) -> String {
        format!("{}/{}", self.device, self.module)
    }

    pub fn username(&self) -> String {
        format!(
            "{}/{}/{}/?api-version=2018-06-30",
            self.hub, self.device, self.module
        )
    }

    /// A fresh SAS token valid for `token_ttl`.
    pub fn sas_token(&self) -> Result<String, EdgeHubError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let expiry = now + self.token_ttl.as_secs();
        let sr = sas::resource(&self.hub, &self.device, &self.module);
        let data = sas::string_to_sign(&sr, expiry);
        let sig = match &self.signer {
            Signer::Workload(w) => w.sign(&data)?,
            Signer::Key(k) => sas::sign_locally(k, &data).map_err(EdgeHubError::Config)?,
        };
        Ok(sas::token(&sr, &sig, expiry))
    }

    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, EdgeHubError> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = self.trust_bundle.as_deref().ok_or_else(|| {
            EdgeHubError::Tls(
                "no trust bundle: set EdgeModuleCACertificateFile for local dev".into(),
            )
        })?;
        let mut reader = std::io::BufReader::new(pem.as_bytes());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| EdgeHubError::Tls(format!("bad PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| EdgeHubError::Tls(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(EdgeHubError::Tls(
                "the trust bundle holds no certificates".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EdgeHubError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// Telemetry topic for an output, with message properties in the topic.
    pub fn output_topic(&self, output: &str, properties: &[(String, String)]) -> String {
        let mut t = format!(
            "devices/{}/modules/{}/messages/events/%24.on={}&%24.ct=application%2Fjson&%24.ce=utf-8",
            self.device,
            self.module,
            urlencoding::encode(output)
        );
        for (k, v) in properties {
            t.push('&');
            t.push_str(&urlencoding::encode(k));
            t.push('=');
            t.push_str(&urlencoding::encode(v));
        }
        t
    }

    pub fn subscriptions(&self) -> Vec<String> {
        vec![
            "$iothub/twin/res/#".to_string(),
            "$iothub/twin/PATCH/properties/desired/#".to_string(),
            "$iothub/methods/POST/#".to_string(),
            format!("devices/{}/modules/{}/inputs/#", self.device, self.module),
        ]
    }
}

/// Connects to EdgeHub; events (connects, twin responses, patches, methods) arrive on `events`.
pub fn connect(
    id: &ModuleIdentity,
    queue_capacity: usize,
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
        keep_alive: Duration::from_secs(60),
        queue_capacity,
        max_inflight: 16,
        subscriptions: id.subscriptions(),
        // Renew before expiry: reconnect with a fresh token at 80% of its life.
        reconnect_after: Some(id.token_ttl.mul_f32(0.8)),
        max_backoff: Duration::from_secs(30),
        max_message_bytes: 256 * 1024,
    };
    Ok(Session::start(config, Some(events))?)
}

/// Telemetry to an EdgeHub output; the output name may change live (twin `output.name`).
pub struct EdgeHubSink {
    pub session: Session,
    pub identity: Arc<ModuleIdentity>,
    pub output: Arc<ArcSwap<String>>,
}

impl Sink for EdgeHubSink {
    fn name(&self) -> &'static str {
        "edgehub"
    }

    fn send(&mut self, msg: Outgoing) -> Result<(), PublishError> {
        let topic = self
            .identity
            .output_topic(&self.output.load(), &msg.properties);
        self.session.publish(topic, msg.body)
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        self.session.flush(timeout)
    }

    fn stats(&self) -> SinkStats {
        self.session.stats()
    }
}

/// Parses `$iothub/...?$rid=..&$version=..` query values.
pub fn topic_param<'a>(topic: &'a str, key: &str) -> Option<&'a str> {
    let query = topic.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ModuleIdentity {
        ModuleIdentity {
            hub: "hub.example".into(),
            device: "dev1".into(),
            module: "edgelens".into(),
            gateway: "127.0.0.1".into(),
            port: 8883,
            signer: Signer::Key("AAAA".into()),
            trust_bundle: None,
            token_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn topics_follow_the_edgehub_conventions() {
        let t = id().output_topic(
            "detections",
            &[
                ("source".into(), "cam 1".into()),
                ("model".into(), "ssdlite-person".into()),
            ],
        );
        assert_eq!(
            t,
            "devices/dev1/modules/edgelens/messages/events/%24.on=detections&%24.ct=application%2Fjson&%24.ce=utf-8&source=cam%201&model=ssdlite-person"
        );
        assert_eq!(
            id().username(),
            "hub.example/dev1/edgelens/?api-version=2018-06-30"
        );
        assert_eq!(id().client_id(), "dev1/edgelens");
        assert_eq!(
            topic_param("$iothub/twin/res/200/?$rid=7&$version=3", "$rid"),
            Some("7")
        );
        assert_eq!(
            topic_param("$iothub/twin/res/200/?$rid=7&$version=3", "$version"),
            Some("3")
        );
        assert!(
            !format!("{:?}", id()).contains("AAAA"),
            "keys must not reach logs"
        );
    }
}
