//! SAS tokens for a module identity: `SharedAccessSignature sr=..&sig=..&se=..`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The resource a module token grants: `{hub}/devices/{device}/modules/{module}`, url-encoded.
pub fn resource(hub: &str, device: &str, module: &str) -> String {
    urlencoding::encode(&format!("{hub}/devices/{device}/modules/{module}")).into_owned()
}

/// What gets signed: the encoded resource, a newline, the expiry in Unix seconds.
pub fn string_to_sign(encoded_resource: &str, expiry: u64) -> String {
    format!("{encoded_resource}\n{expiry}")
}

pub fn token(encoded_resource: &str, signature_b64: &str, expiry: u64) -> String {
    format!(
        "SharedAccessSignature sr={encoded_resource}&sig={}&se={expiry}",
        urlencoding::encode(signature_b64)
    )
}

/// HMAC-SHA256 with a base64 key, base64 result: what the workload API does with the module key.
pub fn sign_locally(key_b64: &str, data: &str) -> Result<String, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64.trim())
        .map_err(|_| "SharedAccessKey is not valid base64".to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(data.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Parses a token back into (sr, sig, se); used to check tokens in tests and tools.
pub fn parse(token: &str) -> Option<(String, String, u64)> {
    let rest = token.strip_prefix("SharedAccessSignature ")?;
    let (mut sr, mut sig, mut se) = (None, None, None);
    for part in rest.split('&') {
        let (k, v) = part.split_once('=')?;
        match k {
            "sr" => sr = Some(v.to_string()),
            "sig" => sig = Some(urlencoding::decode(v).ok()?.into_owned()),
            "se" => se = v.parse().ok(),
            _ => {}
        }
    }
    Some((sr?, sig?, se?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_verifies() {
        let key =
            base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef0123456789abcdef");
        let sr = resource("hub.azure-devices.net", "dev1", "edgelens");
        assert_eq!(
            sr,
            "hub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fedgelens"
        );
        let sig = sign_locally(&key, &string_to_sign(&sr, 1700000000)).unwrap();
        let t = token(&sr, &sig, 1700000000);
        let (psr, psig, pse) = parse(&t).unwrap();
        assert_eq!(
            (psr.as_str(), psig.as_str(), pse),
            (sr.as_str(), sig.as_str(), 1700000000)
        );
        // The signature is base64 ('+', '/', '='): inside the token it must be url-encoded
        // on its own, or EdgeHub reads a different signature.
        let raw_sig = t
            .split('&')
            .find_map(|p| p.strip_prefix("sig="))
            .expect("sig= part");
        assert!(
            sig.ends_with('='),
            "a 32-byte HMAC in base64 ends with padding"
        );
        assert!(
            !raw_sig.contains(['+', '/', '=']),
            "sig= part not url-encoded: {raw_sig}"
        );
        assert!(raw_sig.contains("%3D"), "{raw_sig}");
        assert_eq!(urlencoding::decode(raw_sig).unwrap(), sig);
    }
}
