//! Request -> response. Every answer carries a strict CSP and no-sniff; unknown paths are
//! 404, known paths with another method 405, overlong paths 414, bodies over 64 KiB 413.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::json;

use super::server::Progress;
use super::tap::ViewerGuard;
use super::UiContext;

pub type Reply = Response<BoxBody<Bytes, Infallible>>;

const MAX_PATH: usize = 256;
const MAX_QUERY: usize = 256;
const MAX_BODY: usize = 64 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
const BOUNDARY: &str = "edgelensframe";

/// Scripts, styles and pictures from this origin only; no inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

static INDEX: &str = include_str!("assets/index.html");
static APP_JS: &str = include_str!("assets/app.js");
static STYLE: &str = include_str!("assets/style.css");
static FAVICON: &str = include_str!("assets/favicon.svg");

fn reply(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(ctype)
            .unwrap_or(header::HeaderValue::from_static("application/octet-stream")),
    );
    secure(h);
    r
}

fn secure(h: &mut hyper::HeaderMap) {
    use header::HeaderValue as V;
    h.insert(header::CONTENT_SECURITY_POLICY, V::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, V::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, V::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, V::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, V::from_static("no-store"));
}

fn text(status: StatusCode, msg: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

fn json_reply(v: &serde_json::Value) -> Reply {
    reply(StatusCode::OK, "application/json", v.to_string())
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, &format!("use {allow}"));
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

pub async fn handle(req: Request<Incoming>, ctx: &UiContext, progress: &Arc<Progress>) -> Reply {
    let path = req.uri().path();
    if path.len() > MAX_PATH || req.uri().query().is_some_and(|q| q.len() > MAX_QUERY) {
        return text(StatusCode::URI_TOO_LONG, "path or query too long");
    }
    // DNS rebinding: a page whose own name resolves to 127.0.0.1 could read the pictures,
    // events and config "same-origin". It cannot send an IP address or localhost as Host.
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(super::zones::host_may_change);
    if !host_ok {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "open the page by IP address (http://127.0.0.1:PORT/) or as localhost; other host names are refused",
        );
    }
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let path = path.to_string();
    match path.as_str() {
        "/api/zones" if req.method() == Method::POST => apply(req, ctx).await,
        "/api/zones" => not_allowed("POST"),
        "/" | "/index.html" | "/app.js" | "/style.css" | "/favicon.svg" | "/favicon.ico"
        | "/api/stats" | "/api/events" | "/api/config" | "/frame.jpg" | "/stream.mjpeg"
            if !get =>
        {
            not_allowed("GET, HEAD")
        }
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/app.js" => reply(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        "/style.css" => reply(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/favicon.svg" | "/favicon.ico" => reply(StatusCode::OK, "image/svg+xml", FAVICON),
        "/api/stats" => json_reply(&stats(ctx)),
        "/api/events" => json_reply(&events(ctx, req.uri().query())),
        "/api/config" => config(ctx, &ctx.tap.scene(), None),
        "/frame.jpg" => frame(ctx).await,
        "/stream.mjpeg" => stream(ctx, progress),
        p if p.starts_with("/snap/") && get => snapshot(ctx, &p["/snap/".len()..]).await,
        p if p.starts_with("/snap/") => not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found; the page is at /"),
    }
}

fn stats(ctx: &UiContext) -> serde_json::Value {
    let mut v = match ctx.tap.stats() {
        Some(s) => serde_json::to_value(s.snapshot()).unwrap_or_else(|_| json!({})),
        None => json!({}),
    };
    let serving = ctx.tap.serving();
    if let Some(o) = v.as_object_mut() {
        o.insert("backend".into(), json!(serving.backend));
        o.insert("model".into(), json!(serving.model));
        o.insert("modelVersion".into(), json!(serving.version));
        // The layout serving now (instances x threads, auto-tuned or fixed); before the
        // first frame, the threads asked for.
        match ctx.tap.stats().and_then(|s| s.layout()) {
            Some(l) => {
                o.insert("threads".into(), json!(l.threads));
                o.insert("instances".into(), json!(l.instances));
                o.insert("layoutChosen".into(), json!(l.chosen));
            }
            None => {
                o.insert("threads".into(), json!(ctx.threads));
            }
        }
        o.insert("source".into(), json!(ctx.source));
        o.insert("viewers".into(), json!(ctx.tap.viewers()));
        o.insert("uiFps".into(), json!(ctx.fps));
        o.insert(
            "uiEncoded".into(),
            json!(ctx.tap.encoded.load(std::sync::atomic::Ordering::Relaxed)),
        );
        o.insert("readOnly".into(), json!(ctx.control.is_none()));
    }
    v
}

fn events(ctx: &UiContext, query: Option<&str>) -> serde_json::Value {
    let after = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after=")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    ctx.tap.with_events(|r| {
        json!({
            "lastId": r.last_id(),
            "events": r.since(after, 100),
            "counts": r.counts(),
            "snapshots": ctx.snapshots.is_some(),
            "crops": ctx.crop_thumbs,
        })
    })
}

/// Zones and lines as the twin writes them. Serialized straight from the f32 points (through
/// a `Value` they would print as 0.05000000074505806).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigView<'a> {
    zones: &'a std::collections::BTreeMap<String, crate::scene::ZoneConfig>,
    lines: &'a std::collections::BTreeMap<String, crate::scene::LineConfig>,
    read_only: bool,
    labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<bool>,
}

fn config(ctx: &UiContext, scene: &crate::scene::SceneConfig, applied: Option<bool>) -> Reply {
    let serving = ctx.tap.serving();
    let view = ConfigView {
        zones: &scene.zones,
        lines: &scene.lines,
        read_only: ctx.control.is_none(),
        labels: &serving.labels,
        applied,
    };
    match serde_json::to_string(&view) {
        Ok(s) => reply(StatusCode::OK, "application/json", s),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn apply(req: Request<Incoming>, ctx: &UiContext) -> Reply {
    let Some(control) = &ctx.control else {
        return text(
            StatusCode::FORBIDDEN,
            "read-only in module mode: set zones and lines in the module twin's desired properties",
        );
    };
    let h = req.headers();
    let json_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    // A page from another origin may not change zones (the JSON type already forces a
    // CORS preflight, which this server never grants; this says it plainly).
    if let (Some(origin), Some(host)) = (h.get(header::ORIGIN), h.get(header::HOST)) {
        let same = origin
            .to_str()
            .ok()
            .zip(host.to_str().ok())
            .is_some_and(|(o, h)| o == format!("http://{h}"));
        if !same {
            return text(
                StatusCode::FORBIDDEN,
                "cross-origin requests may not change zones",
            );
        }
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body too slow"),
    };
    match control(&bytes) {
        Ok(scene) => {
            // `/api/config` shows what the pipeline runs: this config from its next frame.
            config(ctx, &scene, Some(true))
        }
        Err(errors) => {
            let mut r = json_reply(&json!({"applied": false, "errors": errors}));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

/// The newest picture; asking counts as watching for two seconds, so the first ask may
/// wait up to one frame for a fresh picture.
async fn frame(ctx: &UiContext) -> Reply {
    let fresh = !ctx.tap.watched();
    ctx.tap.polled();
    let mut rx = ctx.tap.subscribe();
    if fresh || rx.borrow().is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.changed()).await;
    }
    let current = rx.borrow().clone();
    match current {
        Some(j) => reply(StatusCode::OK, "image/jpeg", j.bytes),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "no picture yet"),
    }
}

/// `multipart/x-mixed-replace`: one part per new picture, for as long as the client reads.
fn stream(ctx: &UiContext, progress: &Arc<Progress>) -> Reply {
    let Ok(permit) = ctx.streams.clone().try_acquire_owned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live streams open",
        );
    };
    let guard = ctx.tap.viewer();
    let mut pictures = ctx.tap.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            let current = pictures.borrow_and_update().clone();
            if let Some(j) = current.filter(|j| j.seq != last) {
                last = j.seq;
                let head = format!(
                    "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    j.bytes.len()
                );
                if tx.send(Bytes::from(head)).await.is_err()
                    || tx.send(j.bytes).await.is_err()
                    || tx.send(Bytes::from_static(b"\r\n")).await.is_err()
                {
                    return;
                }
            }
            tokio::select! {
                r = pictures.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    let body = ChannelBody {
        rx,
        progress: progress.clone(),
        _held: (guard, permit),
    };
    let mut r = Response::new(body.boxed());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("multipart/x-mixed-replace; boundary=edgelensframe"),
    );
    secure(h);
    r
}

/// A body fed by a channel; holds the viewer count and the stream slot while it lives.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    progress: Arc<Progress>,
    _held: (ViewerGuard, tokio::sync::OwnedSemaphorePermit),
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|chunk| {
            chunk.map(|b| {
                self.progress.bump();
                Ok(Frame::data(b))
            })
        })
    }
}

/// How long `/snap/` waits for a snapshot file that is not written yet.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// `/snap/<camera>/<day>/<track>.jpg` from the snapshots folder: plain names only.
async fn snapshot(ctx: &UiContext, reference: &str) -> Reply {
    let Some(root) = &ctx.snapshots else {
        return text(StatusCode::NOT_FOUND, "snapshots are off (--snapshots DIR)");
    };
    if !super::snapshot_ref_ok(reference) {
        return text(StatusCode::NOT_FOUND, "no such snapshot");
    }
    let path = root.join(reference);
    // An event names its snapshot when it is queued; the writer thread lands it a few ms
    // later, so a thumbnail asked for at once waits for it (bounded; connections are too).
    // Only for snapshots an event named lately: anything else is a 404 at once, so missing
    // files (a failed write, pruned by retention) cannot hold connections.
    let wait = ctx
        .tap
        .with_events(|r| r.named_lately(reference, SNAPSHOT_WAIT));
    let deadline = tokio::time::Instant::now() + if wait { SNAPSHOT_WAIT } else { Duration::ZERO };
    loop {
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() && m.len() <= 4 * 1024 * 1024 => break,
            Ok(_) => return text(StatusCode::NOT_FOUND, "no such snapshot"),
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return text(StatusCode::NOT_FOUND, "no such snapshot")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    match tokio::fs::read(&path).await {
        Ok(b) => reply(StatusCode::OK, "image/jpeg", b),
        Err(_) => text(StatusCode::NOT_FOUND, "no such snapshot"),
    }
}
