//! Where snapshots go: the Azure Storage connection string (from the environment only) and
//! the container name (from the twin), parsed and validated. The account key never appears in
//! `Debug`, `Display` or error texts.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::SnapshotError;
use crate::defaults::BLOB_CONNECTION_ENV;

/// A parsed `DefaultEndpointsProtocol=...;BlobEndpoint=...;AccountName=...;AccountKey=...`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The account's blob URL, e.g. `http://blobmodule:11002/edgeaccount` (no trailing `/`).
    pub blob_endpoint: String,
    pub account: String,
    key: String,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("blob_endpoint", &crate::redact::url(&self.blob_endpoint))
            .field("account", &self.account)
            .field("key", &"***")
            .finish()
    }
}

impl ConnectionString {
    /// Parses the Azure format. Without `BlobEndpoint`, the public cloud endpoint
    /// `<protocol>://<account>.blob.<EndpointSuffix>` is used.
    pub fn parse(raw: &str) -> Result<Self, SnapshotError> {
        let bad = |why: &str| SnapshotError::ConnectionString(why.to_string());
        let (mut protocol, mut endpoint, mut account, mut key, mut suffix) =
            (None, None, None, None, None);
        for part in raw.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad("a part has no `=`"));
            };
            let v = v.trim().to_string();
            match k.trim() {
                "DefaultEndpointsProtocol" => protocol = Some(v),
                "BlobEndpoint" => endpoint = Some(v),
                "AccountName" => account = Some(v),
                "AccountKey" => key = Some(v),
                "EndpointSuffix" => suffix = Some(v),
                // Queue/Table endpoints, SAS and friends: not ours.
                _ => {}
            }
        }
        let account = account.ok_or_else(|| bad("`AccountName` is missing"))?;
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("`AccountName` must be letters and digits"));
        }
        let key = key.ok_or_else(|| bad("`AccountKey` is missing"))?;
        if base64::engine::general_purpose::STANDARD
            .decode(&key)
            .map(|k| k.is_empty())
            .unwrap_or(true)
        {
            return Err(bad("`AccountKey` is not base64"));
        }
        let protocol = protocol.unwrap_or_else(|| "https".into());
        let blob_endpoint = match endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => {
                let suffix = suffix.unwrap_or_else(|| "core.windows.net".into());
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        if !(blob_endpoint.starts_with("http://") || blob_endpoint.starts_with("https://")) {
            return Err(bad("`BlobEndpoint` must be an http:// or https:// URL"));
        }
        Ok(Self {
            blob_endpoint,
            account,
            key,
        })
    }

    /// Reads [`BLOB_CONNECTION_ENV`]; `Ok(None)` when it is unset or empty (no uploads).
    pub fn from_env() -> Result<Option<Self>, SnapshotError> {
        match std::env::var(BLOB_CONNECTION_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SnapshotError::ConnectionString(
                format!("{BLOB_CONNECTION_ENV} is not UTF-8"),
            )),
        }
    }

    /// The base64 account key, for the blob client only.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether the endpoint is plain HTTP (the blob module on the edge network is).
    pub fn is_http(&self) -> bool {
        self.blob_endpoint.starts_with("http://")
    }
}

/// A container name that Azure accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    pub fn parse(name: &str) -> Result<Self, SnapshotError> {
        let err = |reason| SnapshotError::ContainerName {
            name: name.chars().take(80).collect(),
            reason,
        };
        if name.len() < 3 || name.len() > 63 {
            return Err(err("length is not 3..=63"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("only lowercase letters, digits and '-' are allowed"));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(err("it must start and end with a letter or digit"));
        }
        if name.contains("--") {
            return Err(err("consecutive hyphens are not allowed"));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Connection and container together: everything the uploader needs to reach its blobs.
#[derive(Debug, Clone)]
pub struct BlobConfig {
    pub connection: ConnectionString,
    pub container: ContainerName,
}

/// The reference an event message carries for an uploaded snapshot.
pub fn blob_ref(container: &ContainerName, blob_name: &str) -> String {
    format!("blob:{container}/{blob_name}")
}

/// The Shared Key `Authorization` value for a request without body (used for Create
/// Container, which `object_store` does not offer). `canonical_headers` are the `x-ms-*`
/// headers as `name:value` lines, sorted; `path` is the URL path; `query` the sorted
/// `name:value` pairs.
pub(crate) fn shared_key_authorization(
    conn: &ConnectionString,
    method: &str,
    canonical_headers: &[(&str, &str)],
    path: &str,
    query: &[(&str, &str)],
) -> Result<String, SnapshotError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(conn.key())
        .map_err(|_| SnapshotError::ConnectionString("`AccountKey` is not base64".into()))?;
    // VERB, then 11 standard headers we do not send, then x-ms-* headers and the resource.
    let mut s = format!("{method}\n\n\n\n\n\n\n\n\n\n\n\n");
    for (k, v) in canonical_headers {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{}{}", conn.account, path));
    for (k, v) in query {
        s.push_str(&format!("\n{k}:{v}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| SnapshotError::ConnectionString("`AccountKey` is empty".into()))?;
    mac.update(s.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!("SharedKey {}:{sig}", conn.account))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn parses_edge_connection_string_and_hides_the_key() {
        let raw = format!(
            "DefaultEndpointsProtocol=http;BlobEndpoint=http://blobmodule:11002/edgeacct/;\
             AccountName=edgeacct;AccountKey={DEV_KEY};"
        );
        let c = ConnectionString::parse(&raw).unwrap();
        assert_eq!(c.blob_endpoint, "http://blobmodule:11002/edgeacct");
        assert_eq!(c.account, "edgeacct");
        assert!(c.is_http());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("Eby8"), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn cloud_form_without_blob_endpoint() {
        let raw = format!(
            "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={DEV_KEY};\
             EndpointSuffix=core.windows.net"
        );
        let c = ConnectionString::parse(&raw).unwrap();
        assert_eq!(c.blob_endpoint, "https://acct1.blob.core.windows.net");
    }

    #[test]
    fn bad_connection_strings_name_the_problem_without_the_key() {
        for (raw, needle) in [
            ("AccountName=a;AccountKey=%%%notbase64", "not base64"),
            ("AccountKey=abcd", "AccountName"),
            ("AccountName=a", "AccountKey"),
            ("AccountName=a/b;AccountKey=abcd", "letters and digits"),
            ("AccountName=a;AccountKey=abcd;BlobEndpoint=ftp://x", "http"),
            ("garbage", "no `=`"),
        ] {
            let e = ConnectionString::parse(raw).unwrap_err().to_string();
            assert!(e.contains(needle), "{raw}: {e}");
            assert!(!e.contains("%%%notbase64"), "{e}");
        }
    }

    #[test]
    fn container_names_follow_azure_rules() {
        let long_ok = "a".repeat(63);
        for ok in ["abc", "snapshots", "edge-lens-01", long_ok.as_str()] {
            assert!(ContainerName::parse(ok).is_ok(), "{ok}");
        }
        let long_bad = "a".repeat(64);
        for bad in [
            "ab",
            long_bad.as_str(),
            "Snapshots",
            "snap_shots",
            "-abc",
            "abc-",
            "a--b",
            "../x",
            "a/b",
            "$root",
            "",
        ] {
            assert!(ContainerName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_key_signature_is_stable_and_key_dependent() {
        let c = ConnectionString::parse(&format!(
            "AccountName=devstoreaccount1;AccountKey={DEV_KEY}"
        ))
        .unwrap();
        let h = [
            ("x-ms-date", "Fri, 27 Nov 2026 06:00:00 GMT"),
            ("x-ms-version", "2021-08-06"),
        ];
        let a = shared_key_authorization(
            &c,
            "PUT",
            &h,
            "/devstoreaccount1/c1",
            &[("restype", "container")],
        )
        .unwrap();
        let b = shared_key_authorization(
            &c,
            "PUT",
            &h,
            "/devstoreaccount1/c1",
            &[("restype", "container")],
        )
        .unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("SharedKey devstoreaccount1:"));
        let other =
            ConnectionString::parse("AccountName=devstoreaccount1;AccountKey=AAAA").unwrap();
        let d = shared_key_authorization(&other, "PUT", &h, "/devstoreaccount1/c1", &[]).unwrap();
        assert_ne!(a, d);
    }
}
