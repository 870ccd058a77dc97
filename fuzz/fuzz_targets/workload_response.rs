//! The workload API's answers: a sign response's digest goes into a SAS token, a trust
//! bundle's PEM into the TLS roots.
#![no_main]

use std::time::Duration;

use edgelens::edgehub::{sas, workload, ModuleIdentity, Signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sign, bundle) = workload::fuzz_parse_responses(data);
    if let Ok(digest) = sign {
        let sr = sas::resource("hub.azure-devices.net", "dev1", "edgelens");
        let token = sas::token(&sr, &digest, 1_900_000_000);
        assert_eq!(
            sas::parse(&token),
            Some((sr, digest, 1_900_000_000)),
            "a token round-trips whatever the digest holds"
        );
    }
    if let Ok(pem) = bundle {
        let identity = ModuleIdentity {
            hub: "hub.azure-devices.net".into(),
            device: "dev1".into(),
            module: "edgelens".into(),
            gateway: "edgehub".into(),
            port: 8883,
            signer: Signer::Key(String::new()),
            trust_bundle: Some(pem),
            token_ttl: Duration::from_secs(3600),
        };
        let _ = identity.tls_config();
    }
});
