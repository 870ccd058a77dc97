//! Secrets never leave the process: camera passwords in `rtsp://user:pass@host`, SAS tokens
//! in `?sv=...&sig=...` query strings. Everything that may print a URL (logs, errors,
//! reported properties, metrics labels) goes through here.

/// The URL with its userinfo and query string replaced by `***`; the scheme, host and path
/// stay, so an operator still sees which camera or which blob is meant.
pub fn url(raw: &str) -> String {
    let (head, fragment_cut) = match raw.find('#') {
        Some(i) => (&raw[..i], true),
        None => (raw, false),
    };
    let (head, had_query) = match head.find('?') {
        Some(i) => (&head[..i], true),
        None => (head, false),
    };
    let mut out = match head.find("://") {
        Some(s) => {
            let scheme = &head[..s];
            let rest = &head[s + 3..];
            // The authority ends at the first '/'; credentials end at its *last* '@'
            // (a password may itself hold '@').
            let auth_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(auth_end);
            match authority.rfind('@') {
                Some(at) => format!("{scheme}://***@{}{path}", &authority[at + 1..]),
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    if had_query {
        out.push_str("?***");
    }
    if fragment_cut {
        out.push_str("#***");
    }
    out
}

/// `text` with every URL-looking word passed through [`url`]: for error texts from libraries
/// (reqwest, GStreamer) that embed the URL they were given.
pub fn text(raw: &str) -> String {
    raw.split_inclusive(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"' || c == '\'')
        .map(|word| {
            let trimmed = word.trim_end_matches(|c: char| {
                c.is_whitespace() || c == '(' || c == ')' || c == '"' || c == '\''
            });
            if trimmed.contains("://") {
                let start = trimmed.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
                format!(
                    "{}{}{}",
                    &trimmed[..start],
                    url(&trimmed[start..]),
                    &word[trimmed.len()..]
                )
            } else {
                word.to_string()
            }
        })
        .collect()
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
}
