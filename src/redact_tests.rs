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
        // serde's unknown-field text quotes with backticks.
        (
            "unknown field `rtsp://u:p`w@cam/s`, expected",
            "unknown field `rtsp://***@cam/s`, expected",
        ),
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
