//! The page in headless chromium: live picture, stats, editor JSON, apply -> events, and
//! no console errors.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::{common, edgelens, get, near, wait_for, PERSON};

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
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
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
    // Snapshots on, so the events list shows real thumbnails (served by /snap/).
    let snaps = tempfile::tempdir().unwrap();
    let snaps_dir = snaps.path().to_str().unwrap();
    let e = edgelens(&[
        "--source",
        video,
        "--realtime",
        "--snapshots",
        snaps_dir,
        "--snapshot-crop",
    ]);
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
        let first = wait_async(
            "a live picture with boxes",
            Duration::from_secs(60),
            || async {
                let png = img.screenshot().await.ok()?;
                let pic = image::load_from_memory(&png).ok()?.to_rgb8();
                (pic.width() > 300 && near(&pic, PERSON, 40) > 200).then_some(pic)
            },
        )
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
        // The layout serving (auto-tuned by default), e.g. "2 × 1 (auto)", not the request.
        let layout = text(&c, "stat-threads").await;
        let parts: Vec<&str> = layout.split_whitespace().collect();
        assert!(
            parts.len() == 4
                && parts[0].parse::<u32>().is_ok_and(|n| n >= 1)
                && parts[1] == "×"
                && parts[2].parse::<u32>().is_ok_and(|n| n >= 1)
                && (parts[3] == "(auto)" || parts[3] == "(fixed)"),
            "layout shown as {layout:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        save(
            &common::root().join("docs/ui-live.png"),
            &c.screenshot().await.unwrap(),
        );

        // Draw a 4-point zone: the JSON shows it in normalized coordinates.
        c.find(Locator::Id("mode-zone"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
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
        c.find(Locator::Id("finish"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let shown: Value = serde_json::from_str(&text(&c, "json").await).unwrap();
        let poly = shown["zones"]["walkway"]["polygon"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(poly.len(), 4, "{shown}");
        for (p, (fx, fy)) in poly.iter().zip(corners) {
            let (x, y) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
            // Clicks land on whole pixels: within two pixels of the aimed point.
            assert!(
                (x - (0.5 + fx)).abs() <= 2.0 / w + 0.001,
                "x {x} for {fx}: {shown}"
            );
            assert!(
                (y - (0.5 + fy)).abs() <= 2.0 / h + 0.001,
                "y {y} for {fy}: {shown}"
            );
        }
        assert_eq!(shown["zones"]["walkway"]["classes"], json!(["person"]));
        assert_eq!(shown["lines"], json!({}));
        // The same JSON is valid twin zones.
        edgelens::scene::SceneConfig::from_json(&shown).expect("valid twin zones/lines");

        // A line: two clicks, from then to.
        c.find(Locator::Id("mode-line"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
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
        assert!(
            (from[0].as_f64().unwrap() - 0.6).abs() <= 2.0 / w + 0.001,
            "{both}"
        );
        assert!((both["lines"]["gate"]["to"][1].as_f64().unwrap() - 0.85).abs() <= 2.0 / h + 0.001);
        edgelens::scene::SceneConfig::from_json(&both).expect("valid twin zones/lines");
        save(
            &common::root().join("docs/ui-editor.png"),
            &c.screenshot().await.unwrap(),
        );

        // Apply: the zone goes live, people walking in give zoneEntered events.
        c.find(Locator::Id("apply"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_async("apply to succeed", Duration::from_secs(10), || async {
            text(&c, "apply-status")
                .await
                .starts_with("Applied")
                .then_some(())
        })
        .await;
        // The running config follows on the pipeline's next frame.
        let cfg = wait_for("the zone in /api/config", Duration::from_secs(10), || {
            let (_, _, cfg) = get(e.addr, "/api/config");
            let cfg: Value = serde_json::from_slice(&cfg).ok()?;
            cfg["zones"].get("walkway").is_some().then_some(cfg)
        });
        assert_eq!(
            cfg["zones"]["walkway"]["polygon"],
            shown["zones"]["walkway"]["polygon"]
        );
        assert_eq!(cfg["lines"]["gate"]["from"], both["lines"]["gate"]["from"]);
        wait_async(
            "a zoneEntered event in the list",
            Duration::from_secs(60),
            || async {
                let rows = c
                    .find_all(Locator::Css("#events li[data-name=zoneEntered]"))
                    .await
                    .ok()?;
                (!rows.is_empty()).then_some(())
            },
        )
        .await;
        // The counts panel is live: people stand in the walkway all along the clip.
        wait_async(
            "someone present in the counts panel",
            Duration::from_secs(20),
            || async {
                let t = text(&c, "counts").await;
                let n = t.lines().find_map(|l| l.strip_suffix(" present"))?;
                (n.trim().rsplit(' ').next()?.parse::<u32>().ok()? > 0).then_some(())
            },
        )
        .await;
        let first_row = c.find(Locator::Css("#events li.event")).await.unwrap();
        assert!(first_row.text().await.unwrap().contains('#'));
        // Thumbnails: snapshot pictures that loaded (a decoded JPEG has a natural width),
        // through /snap/ and the page's CSP.
        wait_async(
            "a loaded snapshot thumbnail",
            Duration::from_secs(30),
            || async {
                let loaded = c
                    .execute(
                        // Crops (--snapshot-crop): the box alone, taller than wide.
                        "return [...document.querySelectorAll('#events img.thumb')]\
                     .filter(i => i.complete && i.src.endsWith('-crop.jpg')\
                        && i.naturalHeight > i.naturalWidth).length",
                        vec![],
                    )
                    .await
                    .ok()?;
                (loaded.as_u64()? > 0).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        save(
            &common::root().join("docs/ui-events.png"),
            &c.screenshot().await.unwrap(),
        );

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
