//! Prometheus text on `/metrics`, the way IoT Edge's metrics-collector scrapes modules.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Anything that can render Prometheus text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

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
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics listener failed");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let render = render.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: Request<hyper::body::Incoming>| {
                                let render = render.clone();
                                async move {
                                    let resp = if req.uri().path() == "/metrics" {
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
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        })?;
    Ok(bound)
}
