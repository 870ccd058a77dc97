//! Several `--source` values: `NAME=URI` names a source; a bare URI is named after its last
//! path part (`samples/vtest.mp4` -> `vtest.mp4`, `rtsp://h/cam1` -> `cam1`), and a name
//! taken twice gets `-N` (its position) appended. A single bare `--source` keeps today's
//! behaviour: its messages carry the name derived from the source (or `--name`).

/// Names like the twin's `sources` keys (and model names): safe in a label and a path.
pub fn valid_name(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// `(name, uri)` per `--source`, names unique. `NAME=URI` only when NAME is a valid name:
/// `rtsp://h/s?a=b` or `./x=y.mp4` stay whole uris.
pub fn named(values: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let (name, uri) = match v.split_once('=') {
            Some((n, u)) if valid_name(n) && !u.is_empty() => (n.to_string(), u.to_string()),
            _ => (derived(v), v.clone()),
        };
        let name = if out.iter().any(|(n, _)| *n == name) {
            format!("{name}-{}", i + 1)
        } else {
            name
        };
        out.push((name, uri));
    }
    out
}

/// The one `--source`: `NAME=URI` gives its messages NAME; a bare uri stays as it was.
pub fn single(values: &[String]) -> (Option<String>, String) {
    let v = values.first().cloned().unwrap_or_default();
    match v.split_once('=') {
        Some((n, u)) if valid_name(n) && !u.is_empty() => (Some(n.to_string()), u.to_string()),
        _ => (None, v),
    }
}

/// The last path part of a uri when it makes a valid name, else `source`.
fn derived(uri: &str) -> String {
    let tail = uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let tail = tail.split(['?', '#']).next().unwrap_or_default();
    if valid_name(tail) {
        tail.to_string()
    } else {
        "source".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<(String, String)> {
        named(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn names_are_given_or_derived_and_unique() {
        let got = n(&[
            "door=rtsp://u:p@10.0.0.2/s?a=b",
            "samples/vtest.mp4",
            "samples/vtest.mp4",
            "rtsp://h/cam1?x=1",
            "test",
            "./x=y.mp4",
        ]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        // "./x=y.mp4" is no NAME=URI ("./x" is no name), and "x=y.mp4" no name either.
        assert_eq!(
            names,
            ["door", "vtest.mp4", "vtest.mp4-3", "cam1", "test", "source"]
        );
        assert_eq!(got[0].1, "rtsp://u:p@10.0.0.2/s?a=b");
        assert_eq!(
            got[3].1, "rtsp://h/cam1?x=1",
            "'=' inside a uri keeps it whole"
        );
        assert_eq!(got[5].1, "./x=y.mp4");
    }

    #[test]
    fn unusable_names_fall_back() {
        assert_eq!(n(&["rtsp://h/"])[0].0, "h");
        assert_eq!(n(&["rtsp://u:p@h:554"])[0].0, "source");
        assert!(!valid_name(".hidden") && !valid_name("") && !valid_name("a b"));
        assert_eq!(n(&["a b=test"])[0].1, "a b=test", "'a b' is no name");
    }
}
