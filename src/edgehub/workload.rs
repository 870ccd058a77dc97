//! The IoT Edge workload API: HTTP/1.1 over a unix socket. Signs SAS data with the
//! module's key (which never leaves the security daemon) and serves the trust bundle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::EdgeHubError;

const API_VERSION: &str = "2019-01-30";

#[derive(Debug, Clone)]
pub struct WorkloadClient {
    socket: PathBuf,
    module_id: String,
    generation_id: String,
}

#[derive(Serialize)]
struct SignRequest<'a> {
    #[serde(rename = "keyId")]
    key_id: &'a str,
    algo: &'a str,
    data: String,
}

#[derive(Deserialize)]
struct SignResponse {
    digest: String,
}

#[derive(Deserialize)]
struct TrustBundle {
    certificate: String,
}

impl WorkloadClient {
    /// `uri` is `unix:///var/run/iotedge/workload.sock` (the IOTEDGE_WORKLOADURI form).
    pub fn new(
        uri: &str,
        module_id: &str,
        generation_id: &str,
    ) -> Result<WorkloadClient, EdgeHubError> {
        let socket = uri.strip_prefix("unix://").ok_or_else(|| {
            EdgeHubError::Config(format!(
                "IOTEDGE_WORKLOADURI '{uri}' must be a unix:// socket"
            ))
        })?;
        Ok(WorkloadClient {
            socket: PathBuf::from(socket),
            module_id: module_id.to_string(),
            generation_id: generation_id.to_string(),
        })
    }

    /// HMAC-SHA256 of `data` with the module's primary key; base64 digest.
    pub fn sign(&self, data: &str) -> Result<String, EdgeHubError> {
        let path = format!(
            "/modules/{}/genid/{}/sign?api-version={API_VERSION}",
            urlencoding::encode(&self.module_id),
            urlencoding::encode(&self.generation_id)
        );
        let body = serde_json::to_vec(&SignRequest {
            key_id: "primary",
            algo: "HMACSHA256",
            data: base64::engine::general_purpose::STANDARD.encode(data.as_bytes()),
        })
        .map_err(|e| EdgeHubError::Workload(e.to_string()))?;
        let resp: SignResponse = self.call("POST", &path, Some(body))?;
        Ok(resp.digest)
    }

    pub fn trust_bundle(&self) -> Result<String, EdgeHubError> {
        let resp: TrustBundle = self.call(
            "GET",
            &format!("/trust-bundle?api-version={API_VERSION}"),
            None,
        )?;
        Ok(resp.certificate)
    }

    /// One request, retried: the daemon drops connections past 10 concurrent ones.
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, EdgeHubError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EdgeHubError::Workload(e.to_string()))?;
        let mut last = String::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
            match runtime.block_on(request(&self.socket, method, path, body.clone())) {
                Ok((status, bytes)) if status.is_success() => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        EdgeHubError::Workload(format!("{method} {path}: bad response: {e}"))
                    });
                }
                Ok((status, bytes)) if status.is_server_error() => {
                    last = format!("{status}: {}", String::from_utf8_lossy(&bytes));
                }
                Ok((status, bytes)) => {
                    return Err(EdgeHubError::Workload(format!(
                        "{method} {} answered {status}: {}",
                        path.split('?').next().unwrap_or(path),
                        String::from_utf8_lossy(&bytes)
                    )))
                }
                Err(e) => last = e,
            }
        }
        Err(EdgeHubError::Workload(format!(
            "workload API at {} unreachable after 5 tries: {last}",
            self.socket.display()
        )))
    }
}

async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "workload");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

/// The workload API's response bodies, parsed as `sign` and `trust_bundle` parse them, for
/// the `workload_response` fuzz target. Not an API.
#[doc(hidden)]
pub fn fuzz_parse_responses(body: &[u8]) -> (Result<String, String>, Result<String, String>) {
    let sign = serde_json::from_slice::<SignResponse>(body)
        .map(|r| r.digest)
        .map_err(|e| e.to_string());
    let bundle = serde_json::from_slice::<TrustBundle>(body)
        .map(|r| r.certificate)
        .map_err(|e| e.to_string());
    (sign, bundle)
}
