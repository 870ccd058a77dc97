//! The HTTP side: boxes on a known picture, bad input, 1 000 connections, read-only mode.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{common, edgelens, fd_count, get, http, near, still_image_source, wait_for, PERSON};

#[test]
fn boxes_are_drawn_on_a_known_image_and_the_server_holds_up() {
    let src = still_image_source();
    let e = edgelens(&["--pipeline", &src, "--live"]);
    let pid = e.child.id();
    // The still frame has 4 people: the live picture shows red boxes; the image has none.
    let picture = wait_for("a picture with boxes", Duration::from_secs(60), || {
        let (status, _, body) = get(e.addr, "/frame.jpg");
        let img = image::load_from_memory(&body).ok()?.to_rgb8();
        (status == 200 && near(&img, PERSON, 40) > 300).then_some(img)
    });
    let source = image::open(common::data("vtest-frame.png"))
        .unwrap()
        .to_rgb8();
    let in_source = near(&source, PERSON, 40) as f64 / source.len() as f64;
    let in_picture = near(&picture, PERSON, 40) as f64 / picture.len() as f64;
    assert!(
        in_picture > 10.0 * in_source.max(1e-4),
        "box colour share: picture {in_picture}, source {in_source}"
    );
    // Security headers on every answer.
    let (status, head, body) = get(e.addr, "/");
    assert_eq!(status, 200);
    assert!(head.contains(edgelens::ui::CSP), "{head}");
    assert!(head
        .to_lowercase()
        .contains("x-content-type-options: nosniff"));
    assert!(String::from_utf8_lossy(&body).contains("<script src=\"/app.js\""));

    // Bad methods, long paths, garbage.
    for (req, want) in [
        ("DELETE / HTTP/1.1", 405),
        ("POST /api/stats HTTP/1.1", 405),
        ("PUT /api/zones HTTP/1.1", 405),
        ("BREW /stream.mjpeg HTTP/1.1", 405),
        ("GET /nope HTTP/1.1", 404),
        ("GET /snap/../../etc/passwd HTTP/1.1", 404),
    ] {
        let (status, head, _) = http(
            e.addr,
            format!("{req}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, want, "{req}: {head}");
    }
    let long = format!("/{}", "a".repeat(8000));
    assert_eq!(get(e.addr, &long).0, 414);
    let huge = format!("/{}", "a".repeat(100_000));
    let (status, _, _) = get(e.addr, &huge);
    assert!(status == 0 || status >= 400, "100 KB path: {status}");
    let (status, _, _) = http(e.addr, b"\x00\x01\x02 garbage\r\n\r\n");
    assert!(status == 0 || status == 400, "garbage: {status}");
    let (status, _, body) = http(
        e.addr,
        format!(
            "POST /api/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n{}",
            "x".repeat(200_000)
        )
        .as_bytes(),
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // DNS rebinding: a page served as evil.example that resolves to us may not change zones.
    let zones = r#"{"zones": {}}"#;
    let (status, _, _) = http(
        e.addr,
        format!(
            "POST /api/zones HTTP/1.1\r\nHost: evil.example:9601\r\nOrigin: http://evil.example:9601\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{zones}",
            zones.len()
        )
        .as_bytes(),
    );
    assert_eq!(status, 421, "rebinding host");
    // Nor read what the camera sees (pictures, events, snapshots, config); a missing Host is
    // refused the same way.
    for path in [
        "/",
        "/api/config",
        "/api/stats",
        "/api/events",
        "/frame.jpg",
        "/stream.mjpeg",
        "/snap/cam1/x.jpg",
    ] {
        for host in [
            "Host: evil.example:9601\r\n",
            "Host: 127.0.0.1.evil.example\r\n",
            "",
        ] {
            let (status, _, body) = http(
                e.addr,
                format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes(),
            );
            assert!(
                status == 421 || (host.is_empty() && status == 400),
                "{path} with {host:?}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    for host in ["127.0.0.1", "localhost:9601", "[::1]:9601"] {
        let (status, _, _) = http(
            e.addr,
            format!("GET /api/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, 200, "Host: {host}");
    }

    // 1 000 connections at once: bounded (64 served, the rest told 503 or closed), the
    // server keeps serving, and its open files come back to where they were.
    std::thread::sleep(Duration::from_secs(1));
    let baseline = fd_count(pid);
    let outcome = thousand_connections(e.addr);
    eprintln!("1000 connections: {outcome:?}");
    assert_eq!(outcome.ok + outcome.busy + outcome.closed, 1000);
    assert!(outcome.ok >= 64, "{outcome:?}");
    let (status, _, _) = get(e.addr, "/api/stats");
    assert_eq!(status, 200, "serving after the flood");
    let after = wait_for("fds back to baseline", Duration::from_secs(30), || {
        let n = fd_count(pid);
        (n <= baseline + 2).then_some(n)
    });
    eprintln!("fds: baseline {baseline}, after {after}");
}

#[derive(Debug, Default)]
struct Flood {
    ok: usize,
    busy: usize,
    closed: usize,
}

fn thousand_connections(addr: SocketAddr) -> Flood {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                tokio::spawn(async move {
                    let run = async {
                        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
                        s.write_all(
                            b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                        )
                        .await
                        .ok()?;
                        let mut buf = Vec::new();
                        let _ = s.read_to_end(&mut buf).await;
                        Some(buf)
                    };
                    match tokio::time::timeout(Duration::from_secs(60), run).await {
                        Ok(Some(b)) if b.starts_with(b"HTTP/1.1 200") => 0,
                        Ok(Some(b)) if b.starts_with(b"HTTP/1.1 503") => 1,
                        _ => 2,
                    }
                })
            })
            .collect();
        let mut f = Flood::default();
        for t in tasks {
            match t.await.unwrap_or(2) {
                0 => f.ok += 1,
                1 => f.busy += 1,
                _ => f.closed += 1,
            }
        }
        f
    })
}

#[test]
fn module_mode_page_is_read_only() {
    let ui = edgelens::ui::start(edgelens::ui::UiOptions {
        crop_thumbs: false,
        addr: "127.0.0.1:0".parse().unwrap(),
        fps: 5.0,
        threads: 1,
        source: "cam1".into(),
        snapshots: None,
        control: None,
    })
    .unwrap();
    let body = r#"{"zones": {}}"#;
    let (status, _, text) = http(
        ui.addr,
        format!(
            "POST /api/zones HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&text).contains("twin"));
    let (_, _, cfg) = get(ui.addr, "/api/config");
    let cfg: Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(cfg["readOnly"], json!(true));
}
