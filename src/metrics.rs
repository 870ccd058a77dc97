//! Prometheus text on `/metrics`, the way IoT Edge's metrics-collector scrapes modules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Anything that can render Prometheus text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A connection (headers, body, response) gets this long in all: a slow client cannot pin
/// a slot.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Binds now (so a taken port is a clear startup error) and serves on a background thread.
pub fn serve(addr: SocketAddr, render: Render) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => accept_loop(l, render).await,
                    Err(e) => tracing::error!(error = %e, "metrics listener failed"),
                }
            })
        })?;
    Ok(bound)
}

async fn accept_loop(listener: tokio::net::TcpListener, render: Render) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                backoff = Duration::from_millis(10);
                s
            }
            Err(e) => {
                // EMFILE and friends: accept fails at once, again and again. Back off
                // instead of spinning a core.
                tracing::warn!(error = %e, retry_in = ?backoff, "metrics accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let render = render.clone();
                async move { respond(&req, &render) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
            drop(permit);
        });
    }
}

fn respond(
    req: &Request<hyper::body::Incoming>,
    render: &Render,
) -> Result<Response<Full<Bytes>>, String> {
    let resp = if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"GET /metrics\n")))
    } else if req.uri().path() == "/metrics" {
        Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(render())))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
    };
    resp.map_err(|e| e.to_string())
}
