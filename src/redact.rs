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
const CLOSERS: &[char] = &[')', ']', '}', '>', '"', '\'', '`', ',', ';', '.', ':', '!'];

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
        Some('`') => Some('`'),
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
#[path = "redact_tests.rs"]
mod tests;
