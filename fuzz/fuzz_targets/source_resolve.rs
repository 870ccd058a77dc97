//! Source resolution from twin values. Input: the uri on the first line, then `key=value`
//! params, one a line. Must never panic, and no error text or display name may carry the
//! uri's userinfo (camera credentials).
#![no_main]

use std::collections::BTreeMap;

use edgelens::ingest;
use libfuzzer_sys::fuzz_target;

/// Every credential-bearing tail of the uri's userinfo, each followed by '@' as it would
/// appear unredacted: "u:p@ss" gives "u:p@ss@" and "ss@".
fn secrets(uri: &str) -> Vec<String> {
    let Some(s) = uri.find("://") else {
        return Vec::new();
    };
    // Only a URL has userinfo: a scheme (RFC 3986 letters) up front. A device or file path
    // with "://" inside is a path. A file URI's authority is a host, never credentials.
    let scheme = &uri[..s];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme || scheme.eq_ignore_ascii_case("file") {
        return Vec::new();
    }
    let rest = &uri[s + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Vec::new();
    };
    let userinfo = &authority[..at];
    // What may show: the uri without its userinfo. A secret that also occurs there (in the
    // path, say) is not the userinfo's to leak.
    let shown = format!(
        "{}://{}{}",
        &uri[..s],
        &authority[at + 1..],
        &rest[authority.len()..]
    );
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let tail = &userinfo[start..];
        // "***@" is what redaction leaves; an empty tail is no secret.
        let secret = format!("{tail}@");
        if !tail.is_empty() && !tail.contains('*') && !shown.contains(&secret) {
            out.push(secret);
        }
        match tail.find('@') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let uri = lines.next().unwrap_or_default();
    let params: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // A secret the params also hold is the params' to show (`name` sets the display name).
    let secrets: Vec<String> = secrets(uri)
        .into_iter()
        .filter(|s| {
            !params
                .iter()
                .any(|(k, v)| k.contains(s.as_str()) || v.contains(s.as_str()))
        })
        .collect();
    match ingest::resolve(uri, &params, None) {
        Ok(spec) => {
            for s in &secrets {
                assert!(
                    !spec.name.contains(s.as_str()),
                    "name {:?} leaks {s:?}",
                    spec.name
                );
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for s in &secrets {
                assert!(!msg.contains(s.as_str()), "error {msg:?} leaks {s:?}");
            }
        }
    }
});
