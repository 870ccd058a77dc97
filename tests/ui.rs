//! The live view in a real browser (Debian's headless chromium through chromedriver, driven
//! by fantoccini), and the HTTP side under hostile input. Every process listens on a free
//! loopback port chosen at run time.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// An edgelens `run --ui` child process; killed on drop.
struct Edgelens {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Edgelens {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edgelens run --ui 127.0.0.1:0 ...` and reads the bound address from its log.
fn edgelens(extra: &[&str]) -> Edgelens {
    let mut cmd = common::bin();
    cmd.current_dir(common::root())
        .args(["run", "--no-module", "--ui", "127.0.0.1:0", "--metrics-addr", "off"])
        .args(["--output-mode", "events", "--name", "cam1"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("edgelens starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("url=http://").nth(1) {
                    let addr: String = rest.chars().take_while(|c| *c != '/').collect();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
            if line.contains("ERROR") || line.contains("panicked") {
                eprintln!("edgelens: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("edgelens logs the live view address");
    Edgelens {
        child,
        addr: addr.parse().unwrap(),
    }
}

fn still_image_source() -> String {
    format!(
        "filesrc location={} ! pngdec ! imagefreeze is-live=true ! video/x-raw,framerate=10/1",
        common::data("vtest-frame.png").display()
    )
}

/// One HTTP/1.1 request on a fresh connection; (status, headers, body).
fn http(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = buf.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Pixels within `tol` of `c` in each channel.
fn near(img: &image::RgbImage, c: [u8; 3], tol: i32) -> usize {
    img.pixels()
        .filter(|p| (0..3).all(|i| (p.0[i] as i32 - c[i] as i32).abs() <= tol))
        .count()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// annotate's colour for class 0 (`person` in ssdlite-person).
const PERSON: [u8; 3] = [255, 56, 56];

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
    let source = image::open(common::data("vtest-frame.png")).unwrap().to_rgb8();
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
    assert!(head.to_lowercase().contains("x-content-type-options: nosniff"));
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
            format!("{req}\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
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
            "POST /api/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n{}",
            "x".repeat(200_000)
        )
        .as_bytes(),
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));

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
                            b"GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
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
            "POST /api/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

// ---------------------------------------------------------------- browser

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian chromium-driver, scripts/deps.sh) starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for("chromedriver", Duration::from_secs(20), || {
        TcpStream::connect(addr).ok()
    });
    Driver {
        child,
        url: format!("http://{addr}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1400", "--hide-scrollbars", "--force-device-scale-factor=1"]
        },
        "goog:loggingPrefs": {"browser": "ALL"}
    });
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Chromedriver's browser log (console messages, CSP violations, failed loads).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

async fn text(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

async fn wait_async<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn save(path: &Path, png: &[u8]) {
    if std::env::var_os("EDGELENS_WRITE_SCREENSHOTS").is_some() {
        std::fs::write(path, png).unwrap();
    }
}

#[test]
fn browser_live_view_stats_editor_and_apply() {
    let video = common::root().join("samples/vtest.mp4");
    let video = video.to_str().unwrap();
    let e = edgelens(&["--source", video, "--realtime"]);
    let driver = chromedriver();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        c.goto(&format!("http://{}/", e.addr)).await.unwrap();
        let img = c.find(Locator::Id("live")).await.unwrap();

        // The live picture updates: two screenshots of it a second apart differ, and the
        // boxes are drawn (people walk through vtest.mp4 all along).
        let first = wait_async("a live picture with boxes", Duration::from_secs(60), || async {
            let png = img.screenshot().await.ok()?;
            let pic = image::load_from_memory(&png).ok()?.to_rgb8();
            (pic.width() > 300 && near(&pic, PERSON, 40) > 200).then_some(pic)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let second = image::load_from_memory(&img.screenshot().await.unwrap())
            .unwrap()
            .to_rgb8();
        let changed = first
            .pixels()
            .zip(second.pixels())
            .filter(|(a, b)| a != b)
            .count();
        assert!(changed > first.len() / 100, "only {changed} pixels changed");

        // The stats refresh.
        let f1 = text(&c, "stat-frames").await;
        let f2 = wait_async("frames count to move", Duration::from_secs(10), || async {
            let t = text(&c, "stat-frames").await;
            (t != f1 && t != "–").then_some(t)
        })
        .await;
        assert!(f2.parse::<u64>().is_ok(), "{f2}");
        assert_ne!(text(&c, "stat-backend").await, "–");
        assert!(text(&c, "stat-infer").await.contains('/'));
        tokio::time::sleep(Duration::from_secs(2)).await;
        save(&common::root().join("docs/ui-live.png"), &c.screenshot().await.unwrap());

        // Draw a 4-point zone: the JSON shows it in normalized coordinates.
        c.find(Locator::Id("mode-zone")).await.unwrap().click().await.unwrap();
        let name = c.find(Locator::Id("shape-name")).await.unwrap();
        name.clear().await.unwrap();
        name.send_keys("walkway").await.unwrap();
        c.find(Locator::Id("shape-classes"))
            .await
            .unwrap()
            .select_by_value("person")
            .await
            .unwrap();
        let rect = img.rectangle().await.unwrap(); // (x, y, w, h)
        let (w, h) = (rect.2, rect.3);
        // Offsets from the picture's centre, as fractions of its size.
        let corners = [(-0.45, -0.3), (0.45, -0.3), (0.45, 0.45), (-0.45, 0.45)];
        let mut mouse = MouseActions::new("mouse".into());
        for (fx, fy) in corners {
            mouse = mouse
                .then(PointerAction::MoveToElement {
                    element: img.clone(),
                    duration: None,
                    x: (fx * w).round(),
                    y: (fy * h).round(),
                })
                .then(PointerAction::Down { button: 0 })
                .then(PointerAction::Up { button: 0 });
        }
        // Offsets count from the centre of the element's visible part: show all of it.
        c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
        c.perform_actions(mouse).await.unwrap();
        c.find(Locator::Id("finish")).await.unwrap().click().await.unwrap();
        let shown: Value = serde_json::from_str(&text(&c, "json").await).unwrap();
        let poly = shown["zones"]["walkway"]["polygon"].as_array().unwrap().clone();
        assert_eq!(poly.len(), 4, "{shown}");
        for (p, (fx, fy)) in poly.iter().zip(corners) {
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            // Clicks land on whole pixels: within two pixels of the aimed point.
            assert!((x - (0.5 + fx)).abs() <= 2.0 / w + 0.001, "x {x} for {fx}: {shown}");
            assert!((y - (0.5 + fy)).abs() <= 2.0 / h + 0.001, "y {y} for {fy}: {shown}");
        }
        assert_eq!(shown["zones"]["walkway"]["classes"], json!(["person"]));
        assert_eq!(shown["lines"], json!({}));
        // The same JSON is valid twin zones.
        edgelens::scene::SceneConfig::from_json(&shown).expect("valid twin zones/lines");

        // A line: two clicks, from then to.
        c.find(Locator::Id("mode-line")).await.unwrap().click().await.unwrap();
        let name = c.find(Locator::Id("shape-name")).await.unwrap();
        name.clear().await.unwrap();
        name.send_keys("gate").await.unwrap();
        c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
        let mut mouse = MouseActions::new("mouse".into());
        for (fx, fy) in [(0.1, -0.2), (0.3, 0.35)] {
            mouse = mouse
                .then(PointerAction::MoveToElement {
                    element: img.clone(),
                    duration: None,
                    x: (fx * w).round(),
                    y: (fy * h).round(),
                })
                .then(PointerAction::Down { button: 0 })
                .then(PointerAction::Up { button: 0 });
        }
        c.perform_actions(mouse).await.unwrap();
        let both: Value = serde_json::from_str(&text(&c, "json").await).unwrap();
        assert_eq!(both["zones"], shown["zones"]);
        let from = &both["lines"]["gate"]["from"];
        assert!((from[0].as_f64().unwrap() - 0.6).abs() <= 2.0 / w + 0.001, "{both}");
        assert!((both["lines"]["gate"]["to"][1].as_f64().unwrap() - 0.85).abs() <= 2.0 / h + 0.001);
        edgelens::scene::SceneConfig::from_json(&both).expect("valid twin zones/lines");
        save(&common::root().join("docs/ui-editor.png"), &c.screenshot().await.unwrap());

        // Apply: the zone goes live, people walking in give zoneEntered events.
        c.find(Locator::Id("apply")).await.unwrap().click().await.unwrap();
        wait_async("apply to succeed", Duration::from_secs(10), || async {
            text(&c, "apply-status").await.starts_with("Applied").then_some(())
        })
        .await;
        let (_, _, cfg) = get(e.addr, "/api/config");
        let cfg: Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(cfg["zones"]["walkway"]["polygon"], shown["zones"]["walkway"]["polygon"]);
        assert_eq!(cfg["lines"]["gate"]["from"], both["lines"]["gate"]["from"]);
        wait_async("a zoneEntered event in the list", Duration::from_secs(60), || async {
            let rows = c
                .find_all(Locator::Css("#events li[data-name=zoneEntered]"))
                .await
                .ok()?;
            (!rows.is_empty()).then_some(())
        })
        .await;
        let first_row = c.find(Locator::Css("#events li.event")).await.unwrap();
        assert!(first_row.text().await.unwrap().contains('#'));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        save(&common::root().join("docs/ui-events.png"), &c.screenshot().await.unwrap());

        // No console errors, CSP violations or failed loads all along.
        let log = c.issue_cmd(BrowserLog).await.unwrap();
        let severe: Vec<&Value> = log
            .as_array()
            .map(|a| a.iter().filter(|m| m["level"] == "SEVERE").collect())
            .unwrap_or_default();
        assert!(severe.is_empty(), "browser errors: {severe:?}");
        c.close().await.unwrap();
    });
}
