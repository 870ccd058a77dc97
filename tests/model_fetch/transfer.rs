//! Downloads from hostile or broken servers (items 3, 4, 6 and the size cap).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::archives;
use crate::server::{Body, Length, Route};
use crate::{error_text, secs, uri_config, Env, FetchSettings};

fn capped(env: &Env) -> FetchSettings {
    FetchSettings {
        max_bytes: 1 << 20,
        ..env.settings()
    }
}

#[test]
fn a_declared_oversize_download_is_refused_before_reading() {
    let env = Env::new();
    let route = Route {
        body: Body::Zeros(64 << 20),
        length: Length::True,
        drip: None,
    };
    let r = env.serve_fetch("/big.tgz", route, capped(&env), None);
    error_text(r, &["exceeds the 1048576-byte cap", "--max-model-mb"]);
    env.assert_clean();
}

#[test]
fn an_undeclared_oversize_download_stops_at_the_cap() {
    let env = Env::new();
    let total = 256u64 << 20;
    let route = Route {
        body: Body::Zeros(total),
        length: Length::Omit,
        drip: None,
    };
    let r = env.serve_fetch("/big.tgz", route, capped(&env), None);
    error_text(r, &["exceeds the 1048576-byte cap"]);
    env.assert_clean();
    // The server notices the closed connection long before it has sent everything.
    std::thread::sleep(Duration::from_millis(500));
    let sent = env.server.sent.load(Ordering::SeqCst);
    assert!(sent < total / 4, "server sent {sent} of {total} bytes");
}

#[test]
fn a_content_length_that_lies_low_cannot_push_more_bytes() {
    let env = Env::new();
    let route = Route {
        body: Body::Zeros(64 << 20),
        length: Length::Lie(1000),
        drip: None,
    };
    let r = env.serve_fetch("/lie.tgz", route, capped(&env), None);
    // Only the declared 1000 bytes are read: zeros, an empty tar.
    error_text(r, &["refused", "the archive is empty"]);
    env.assert_clean();
}

#[test]
fn a_slow_drip_server_is_cut_off_by_the_deadline() {
    let env = Env::new();
    let route = Route {
        body: Body::Bytes(archives::model(&archives::noise(200_000), |_| {})),
        length: Length::True,
        drip: Some((16, Duration::from_millis(50))),
    };
    let settings = FetchSettings {
        timeout: secs(2),
        min_rate: 0,
        ..env.settings()
    };
    let started = Instant::now();
    let r = env.serve_fetch("/slow.tgz", route, settings, None);
    error_text(
        r,
        &[
            "did not finish within 2 s",
            "--model-fetch-timeout",
            "/slow.tgz?***",
        ],
    );
    // Generous bound: the point is that it ends, not how fast.
    assert!(started.elapsed() < secs(30), "took {:?}", started.elapsed());
    env.assert_clean();
}

#[test]
fn a_download_below_the_minimum_rate_is_cut_off() {
    let env = Env::new();
    let route = Route {
        body: Body::Bytes(archives::model(&archives::noise(200_000), |_| {})),
        length: Length::True,
        drip: Some((100, Duration::from_millis(100))),
    };
    let settings = FetchSettings {
        timeout: secs(600),
        min_rate: 10 * 1024,
        rate_window: secs(1),
        ..env.settings()
    };
    let r = env.serve_fetch("/drip.tgz", route, settings, None);
    error_text(r, &["too slow", "below the minimum of 10240 bytes/s"]);
    env.assert_clean();
}

#[test]
fn transport_errors_carry_no_secret() {
    let env = Env::new();
    // 404: reqwest's status error embeds the full URL.
    let r = env
        .fetcher(env.settings())
        .fetch(&uri_config(&env.server.url("/missing.tgz"), None));
    error_text(r, &["404", "/missing.tgz?***"]);
    // Untrusted certificate (no extra root).
    env.server
        .route("/m.tgz", Route::bytes(archives::model(b"w", |_| {})));
    let r = env
        .fetcher(FetchSettings::default())
        .fetch(&uri_config(&env.server.url("/m.tgz"), None));
    error_text(r, &["certificate"]);
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("https://127.0.0.1:{port}/m.tgz?sig=SECRET");
    let r = env.fetcher(env.settings()).fetch(&uri_config(&uri, None));
    error_text(r, &["download of https://127.0.0.1"]);
    // Plain http is refused outright.
    let r = env
        .fetcher(env.settings())
        .fetch(&uri_config("http://h/m.tgz?sig=SECRET", None));
    error_text(r, &["unsupported model uri", "http://h/m.tgz?***"]);
    env.assert_clean();
}

#[test]
fn overlapping_fetches_of_different_archives_do_not_mix_bytes() {
    let env = Env::new();
    // Incompressible, so each transfer takes a few hundred ms and the two overlap.
    let wa = archives::noise(600_000);
    let wb: Vec<u8> = wa.iter().rev().copied().collect();
    let (a, b) = (archives::model(&wa, |_| {}), archives::model(&wb, |_| {}));
    let drip = Some((8 * 1024, Duration::from_millis(5)));
    for (path, ar) in [("/a.tgz", &a), ("/b.tgz", &b)] {
        env.server.route(
            path,
            Route {
                body: Body::Bytes(ar.clone()),
                length: Length::True,
                drip,
            },
        );
    }
    let fetcher = env.fetcher(env.settings());
    let results: Vec<_> = std::thread::scope(|s| {
        let jobs: Vec<_> = [("/a.tgz", &a), ("/b.tgz", &b)]
            .map(|(path, ar)| {
                let cfg = uri_config(&env.server.url(path), Some(archives::sha(ar)));
                let f = &fetcher;
                s.spawn(move || f.fetch(&cfg))
            })
            .into_iter()
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    for (r, want) in results.into_iter().zip([&wa, &wb]) {
        let got = r.unwrap();
        assert!(std::fs::read(got.dir.join("w.onnx")).unwrap() == *want);
    }
    env.assert_clean();
}
