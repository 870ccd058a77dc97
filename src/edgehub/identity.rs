//! Who the module is and how it proves it: the IoT Edge environment (or the local-dev
//! connection string), SAS tokens signed by the workload API or a local key, and TLS that
//! trusts only the edge trust bundle.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::workload::WorkloadClient;
use super::{sas, EdgeHubError};
use crate::defaults;

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
            Err(_) => defaults::EDGEHUB_PORT,
        };
        let token_ttl = match std::env::var(TTL_VAR) {
            Ok(s) => {
                Duration::from_secs(s.parse::<u64>().ok().filter(|s| *s >= 2).ok_or_else(|| {
                    EdgeHubError::Config(format!("{TTL_VAR}='{s}' must be seconds >= 2"))
                })?)
            }
            Err(_) => defaults::SAS_TOKEN_TTL,
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
}
