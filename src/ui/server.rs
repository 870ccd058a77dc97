//! The HTTP side: hyper on one current-thread runtime, bounded every way. At most
//! `UI_MAX_CONNECTIONS` connections are served; one more gets a short 503 and is closed
//! (accept never waits, so the listen backlog drains and the page keeps answering under a
//! flood). Each connection is dropped when idle, slow, or old.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use super::routes;
use super::UiContext;
use crate::defaults;

/// Pending connections the kernel holds for us (the default 128 overflows under a burst).
const BACKLOG: u32 = 1024;
/// Connections being told "busy" at once; beyond that they are closed straight away.
const MAX_REJECTING: usize = 256;
/// A connection with no request and no streamed bytes for this long is closed.
const IDLE: Duration = Duration::from_secs(15);
/// No connection lives longer (the page reconnects its stream).
const MAX_LIFE: Duration = Duration::from_secs(3600);
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line + headers) read.
const MAX_HEAD: usize = 16 * 1024;

/// When a connection last showed progress (a request, or a streamed chunk taken).
pub struct Progress {
    started: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn bump(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Binds now (a taken port is a start-up error) and serves on a background thread.
pub fn serve(addr: SocketAddr, ctx: Arc<UiContext>) -> std::io::Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(async { bind(addr) })?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("ui-http".into())
        .spawn(move || runtime.block_on(accept_loop(listener, ctx)))?;
    Ok(bound)
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(listener: TcpListener, ctx: Arc<UiContext>) {
    let slots = Arc::new(Semaphore::new(defaults::UI_MAX_CONNECTIONS));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                backoff = Duration::from_millis(10);
                s
            }
            Err(e) => {
                // EMFILE and friends fail at once, again and again: back off, don't spin.
                tracing::warn!(error = %e, retry_in = ?backoff, "live view: accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                connection(stream, ctx).await;
                drop(permit);
            });
        } else if let Ok(permit) = rejecting.clone().try_acquire_owned() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), busy(stream)).await;
                drop(permit);
            });
        }
        // else: dropped here, closed at once.
    }
}

/// Full: say so, let the client finish sending (so the close is not a reset), close.
async fn busy(mut s: TcpStream) {
    let _ = s
        .write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
              content-length: 27\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
              busy: too many connections\n",
        )
        .await;
    let _ = s.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left = MAX_HEAD;
    while left > 0 {
        match s.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

async fn connection(stream: TcpStream, ctx: Arc<UiContext>) {
    let progress = Arc::new(Progress::new());
    let p = progress.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        let p = p.clone();
        async move {
            p.bump();
            Ok::<_, std::convert::Infallible>(routes::handle(req, &ctx, &p).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut conn => break,
            _ = tick.tick() => {
                if progress.idle() > IDLE || progress.started.elapsed() > MAX_LIFE {
                    break;
                }
            }
        }
    }
}
