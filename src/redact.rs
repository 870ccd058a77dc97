//! Secrets never leave the process: camera passwords in `rtsp://user:pass@host`, SAS tokens
//! in `?sv=...&sig=...` query strings. Everything that may print a URL (logs, errors,
//! reported properties, metrics labels) goes through here.
//!
//! Userinfo is found the way users type it, not only the way RFC 3986 spells it: a password
//! is often pasted raw, with '/', '?', '#', '@', quotes or parens in it. So the userinfo runs
//! to the *last* '@' after `://` unless that '@' plainly sits in a path or query (the text
//! before the first '/', '?' or '#' holds no ':' and no '@', as in `rtsp://cam/a@b`). When in
//! doubt (`rtsp://cam:554/a@b` could be `cam` with password `554/a`) it is redacted: a host
//! hidden too many is better than a password shown.

/// The URL with its userinfo and query string replaced by `***`; the scheme, host and path
/// stay, so an operator still sees which camera or which blob is meant.
pub fn url(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(s) => raw.split_at(s + 3),
        None => ("", raw),
    };
    let mut out = scheme.to_string();
    let rest = match userinfo_end(rest).filter(|_| !scheme.is_empty()) {
        Some(at) => {
            out.push_str("***@");
            &rest[at + 1..]
        }
        None => rest,
    };
    let (head, fragment_cut) = match rest.find('#') {
        Some(i) => (&rest[..i], true),
        None => (rest, false),
    };
    let (head, had_query) = match head.find('?') {
        Some(i) => (&head[..i], true),
        None => (head, false),
    };
    out.push_str(head);
    if had_query {
        out.push_str("?***");
    }
    if fragment_cut {
        out.push_str("#***");
    }
    out
}

/// A source uri as the operator gave it: a URL through [`url`]; a path, device or preset
/// name as it is ('?' and '#' are file name characters), unless it starts like a URL whose
/// scheme was forgotten (`admin:pw@cam.local/s`).
pub fn uri(raw: &str) -> String {
    if raw.contains("://") {
        return url(raw);
    }
    match userinfo_end(raw) {
        Some(at) if raw[..at].contains(':') => format!("***@{}", &raw[at + 1..]),
        _ => raw.to_string(),
    }
}

/// Parameter keys whose values are secrets as a whole (a custom preset's `{password}`).
const SECRET_KEYS: &[&str] = &["pass", "pw", "secret", "token", "credential", "key", "sig"];

/// A source parameter's value as it may be shown: `***` when its key names a secret,
/// otherwise with every URL in it redacted (`uri=rtsp://u:p@cam/s`); `latency_ms=200` stays.
pub fn param(key: &str, value: &str) -> String {
    let key = key.to_ascii_lowercase();
    if SECRET_KEYS.iter().any(|s| key.contains(s)) {
        "***".to_string()
    } else if value.contains("://") {
        // A value is one URL, spaces and all (`rtsp://u:p w@cam/s`), unless it is a list.
        if value
            .split_whitespace()
            .filter(|w| w.contains("://"))
            .count()
            > 1
        {
            text(value)
        } else {
            url(value.trim())
        }
    } else {
        value.to_string()
    }
}

/// Only `scheme://host[:port]`, with `***@` when there was userinfo: for errors about a URL
/// that is refused as a whole, where neither its path nor its query helps the operator.
pub fn origin(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(s) => raw.split_at(s + 3),
        None => ("", raw),
    };
    // Without a scheme, any '@' may end a password (`user:pw@broker`).
    let at = match scheme {
        "" => rest.rfind('@'),
        _ => userinfo_end(rest),
    };
    let (hidden, host) = match at {
        Some(at) => ("***@", &rest[at + 1..]),
        None => ("", rest),
    };
    let host = &host[..host.find(['/', '?', '#']).unwrap_or(host.len())];
    format!("{scheme}{hidden}{host}")
}

/// Where the userinfo of `rest` (what follows `://`) ends: the index of its '@'.
fn userinfo_end(rest: &str) -> Option<usize> {
    let at = rest.rfind('@')?;
    let before = &rest[..at];
    match before.find(['/', '?', '#']) {
        // No path before the '@': RFC userinfo.
        None => Some(at),
        // A ':' or '@' before the first '/', '?' or '#' is a password cut short by one of
        // them, unless it is an IPv6 literal's host.
        Some(i) => {
            let first = &before[..i];
            let userinfo = first.contains('@') || (first.contains(':') && !first.starts_with('['));
            userinfo.then_some(at)
        }
    }
}

/// Characters that close a URL quoted or bracketed in a message.
const CLOSERS: &[char] = &[')', ']', '}', '>', '"', '\'', ',', ';', '.', ':', '!'];

/// `text` with every URL-looking word passed through [`url`]: for error texts from libraries
/// (reqwest, GStreamer, serde) that embed the URL they were given, quoted or not. Words are
/// split at whitespace only: quotes and parens are legal in a password.
pub fn text(raw: &str) -> String {
    raw.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                redact_word(word)
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// One whitespace-free word (plus its trailing whitespace) holding one or more `://`.
fn redact_word(word: &str) -> String {
    let starts = scheme_starts(word);
    let mut out = word[..starts[0]].to_string();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(word.len());
        let opener = word[..start].chars().next_back();
        out.push_str(&redact_one(&word[start..end], opener));
    }
    out
}

/// Where each URL in `word` starts: the scheme before each `://`.
fn scheme_starts(word: &str) -> Vec<usize> {
    let scheme_char = |c: char| c.is_ascii_alphanumeric() || "+-.".contains(c);
    let mut starts: Vec<usize> = Vec::new();
    let mut from = 0;
    while let Some(i) = word[from..].find("://") {
        let sep = from + i;
        let start = word[..sep]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| scheme_char(c))
            .last()
            .map_or(sep, |(j, _)| j);
        starts.push(start);
        from = sep + 3;
    }
    starts
}

/// One URL and whatever follows it up to the next URL: a URL opened by a quote or a bracket
/// ends at the last matching closer; otherwise trailing punctuation is not part of it.
fn redact_one(part: &str, opener: Option<char>) -> String {
    let body_from = part.find("://").map_or(0, |i| i + 3);
    let closer = match opener {
        Some('"') => Some('"'),
        Some('\'') => Some('\''),
        Some('(') => Some(')'),
        Some('[') => Some(']'),
        Some('<') => Some('>'),
        Some('{') => Some('}'),
        _ => None,
    };
    // A closer before the last '@' is inside the password (`'rtsp://u:it's@cam`).
    let last_at = part.rfind('@').map_or(body_from, |a| a.max(body_from));
    let end = closer
        .and_then(|c| part.rfind(c))
        .filter(|&i| i >= last_at)
        .unwrap_or_else(|| {
            part.trim_end_matches(|c: char| c.is_whitespace() || CLOSERS.contains(&c))
                .len()
        });
    format!("{}{}", url(&part[..end]), &part[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_cut_at_the_last_at_in_the_authority() {
        assert_eq!(
            url("rtsp://admin:p@ss@cam.local:554/stream1"),
            "rtsp://***@cam.local:554/stream1"
        );
        // An '@' in the path is not userinfo.
        assert_eq!(url("rtsp://cam/a@b"), "rtsp://cam/a@b");
    }

    #[test]
    fn query_strings_are_cut() {
        let u = "https://acct.blob.core.windows.net/m/model.tar.gz?sv=2022&sig=SECRET%2Fx";
        let r = url(u);
        assert_eq!(r, "https://acct.blob.core.windows.net/m/model.tar.gz?***");
        assert!(!r.contains("SECRET"));
    }

    #[test]
    fn text_redacts_embedded_urls() {
        let e = "error sending request for url (https://h/x.tar.gz?sig=SECRET): timed out";
        let r = text(e);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(r.contains("https://h/x.tar.gz?***"), "{r}");
        let e2 = "could not open rtsp://u:pw@cam/s, giving up";
        assert!(!text(e2).contains("pw"), "{}", text(e2));
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(text("nothing to see: here"), "nothing to see: here");
        assert_eq!(url("/dev/video0"), "/dev/video0");
    }

    #[test]
    fn a_password_holding_slash_query_or_hash_is_userinfo() {
        for (raw, want) in [
            (
                "mqtt://user:pa/ssw0rd@broker:1883",
                "mqtt://***@broker:1883",
            ),
            (
                "mqtt://user:pa?ssw0rd@broker:1883",
                "mqtt://***@broker:1883",
            ),
            (
                "mqtt://user:pa#ssw0rd@broker:1883",
                "mqtt://***@broker:1883",
            ),
            (
                "rtsp://admin:a/b?c#d@cam.local/s?x=1",
                "rtsp://***@cam.local/s?***",
            ),
            ("rtsp://admin@cam.local/s", "rtsp://***@cam.local/s"),
        ] {
            assert_eq!(url(raw), want, "{raw}");
        }
    }

    #[test]
    fn an_at_in_a_path_or_query_is_not_userinfo() {
        assert_eq!(url("rtsp://cam.local/a@b/s"), "rtsp://cam.local/a@b/s");
        assert_eq!(
            url("https://h/c/u@x.y/m.onnx?sig=S@T"),
            "https://h/c/u@x.y/m.onnx?***"
        );
        assert_eq!(url("rtsp://[::1]:554/a@b"), "rtsp://[::1]:554/a@b");
        // Userinfo and an '@' in the path: all of it up to the last '@' is hidden.
        assert_eq!(url("rtsp://u:p@cam/a@b"), "rtsp://***@b");
        // Ambiguous (host:port, or user with password "554/a"): hidden, never shown.
        assert_eq!(url("rtsp://cam:554/a@b"), "rtsp://***@b");
    }

    #[test]
    fn no_at_leaves_the_authority_alone() {
        assert_eq!(url("rtsp://cam.local:554/s"), "rtsp://cam.local:554/s");
        assert_eq!(url("file:///data/a@b.mp4"), "file:///data/a@b.mp4");
        assert_eq!(
            text("open rtsp://cam.local/s failed"),
            "open rtsp://cam.local/s failed"
        );
        // Without a scheme it is a path: '@' is a file name character.
        assert_eq!(url("/data/a:b@c.mp4"), "/data/a:b@c.mp4");
    }

    #[test]
    fn text_finds_passwords_with_parens_and_quotes() {
        for (raw, want) in [
            (
                "could not open rtsp://admin:pa(ss)@cam.local/s",
                "could not open rtsp://***@cam.local/s",
            ),
            (
                "invalid type: string \"rtsp://admin:it's@cam.local/s\", expected struct",
                "invalid type: string \"rtsp://***@cam.local/s\", expected struct",
            ),
            (
                "bad uri 'rtsp://admin:it's@cam.local/s'",
                "bad uri 'rtsp://***@cam.local/s'",
            ),
            (
                "no route (rtsp://u:p)w@cam/s): gave up",
                "no route (rtsp://***@cam/s): gave up",
            ),
            ("(rtsp://u:a\"b/c?d#e@cam/s)", "(rtsp://***@cam/s)"),
            // Opened by a quote that never closes.
            ("'rtsp://admin:it's@cam.local/s", "'rtsp://***@cam.local/s"),
        ] {
            assert_eq!(text(raw), want, "{raw}");
        }
    }

    #[test]
    fn text_redacts_several_urls() {
        let t = text("from rtsp://a:S1@cam1/s to \"mqtt://b:S/2@broker\" (https://h/x?sig=S3)");
        assert_eq!(
            t,
            "from rtsp://***@cam1/s to \"mqtt://***@broker\" (https://h/x?***)"
        );
        let t = text("a=rtsp://u:S1@h1/s,b=rtsp://u:S2@h2/s");
        assert_eq!(t, "a=rtsp://***@h1/s,b=rtsp://***@h2/s");
    }

    #[test]
    fn params_keep_plain_values_and_hide_secrets() {
        assert_eq!(param("latency_ms", "200"), "200");
        assert_eq!(param("uri", "rtsp://u:p w@cam/s"), "rtsp://***@cam/s");
        assert_eq!(param("user-pw", "hunter2"), "***");
        assert_eq!(param("Password", "x"), "***");
        assert_eq!(param("location", "/data/a?b.mp4"), "/data/a?b.mp4");
        assert_eq!(uri("/data/a?b.mp4"), "/data/a?b.mp4");
        assert_eq!(uri("/data/a:b@c.mp4"), "/data/a:b@c.mp4");
        assert_eq!(uri("me@home.mp4"), "me@home.mp4");
        // A URL without its scheme still hides its password.
        assert_eq!(uri("admin:pw@cam.local/s"), "***@cam.local/s");
        assert_eq!(uri("admin:pw@cam"), "***@cam");
        assert_eq!(uri("rtsp://u:p@cam/s?t=1"), "rtsp://***@cam/s?***");
    }

    #[test]
    fn origin_keeps_scheme_and_host_only() {
        assert_eq!(
            origin("mqtt://u:p/w@broker:1883/x?y"),
            "mqtt://***@broker:1883"
        );
        assert_eq!(origin("user:pw@broker:1883"), "***@broker:1883");
        assert_eq!(origin("mqtt://broker/x"), "mqtt://broker");
    }

    /// Every password of three awkward characters around a marker, in a URL bare, quoted,
    /// bracketed or followed by punctuation: the marker never shows and the host always does.
    #[test]
    fn no_awkward_password_shows() {
        let chars = "/?#@()'\"[]:;,.!%&=a";
        for a in chars.chars() {
            for b in chars.chars() {
                for c in chars.chars() {
                    let pw = format!("{a}Zq{b}{c}");
                    if pw.contains("://") {
                        continue;
                    }
                    let u = format!("rtsp://user:{pw}@cam.local:554/s?t=1");
                    let shown = url(&u);
                    assert!(
                        !shown.contains("Zq") && shown.contains("@cam.local"),
                        "{u}: {shown}"
                    );
                    for t in [
                        format!("open {u} failed"),
                        format!("string \"{u}\", expected"),
                        format!("uri '{u}'."),
                        format!("(url ({u})): x"),
                        format!("{u}, then rtsp://v:Zq2@cam2/s"),
                    ] {
                        let r = text(&t);
                        assert!(!r.contains("Zq") && r.contains("@cam.local"), "{t}: {r}");
                    }
                }
            }
        }
    }
}
