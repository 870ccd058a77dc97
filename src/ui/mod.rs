//! Live view and zone editor (`run --ui`): a small page served by the module itself. It
//! shows the latest inferred frame with boxes, track ids, zones and lines drawn, live
//! stats, the last scene events, and an editor that writes the twin's `zones`/`lines`
//! JSON. Local mode may apply it live; module mode is read-only (the twin is the single
//! control plane).
//!
//! tap (pipeline side, cheap when unwatched) -> render (draw + JPEG, own thread) ->
//! server (hyper, bounded) -> routes (endpoints) ; events (ring) ; zones (apply path) ;
//! assets/ (the page, embedded).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub mod events;
pub mod render;
mod routes;
mod server;
pub mod tap;
pub mod zones;

pub use routes::CSP;
pub use tap::{Tap, TapFrame, TapSettings};
pub use zones::{local_control, Control};

use crate::defaults;

pub struct UiOptions {
    pub addr: SocketAddr,
    /// Pictures per second at most, while watched.
    pub fps: f32,
    /// Intra-op threads, shown with the stats.
    pub threads: usize,
    pub source: String,
    /// The snapshots folder, for event thumbnails.
    pub snapshots: Option<PathBuf>,
    /// Snapshots have crops (`--snapshot-crop`): thumbnails show them.
    pub crop_thumbs: bool,
    /// `None`: read-only (module mode).
    pub control: Option<Control>,
}

/// What the request handlers share.
pub struct UiContext {
    pub tap: Arc<Tap>,
    pub control: Option<Control>,
    pub threads: usize,
    pub fps: f32,
    pub source: String,
    pub snapshots: Option<PathBuf>,
    pub crop_thumbs: bool,
    streams: Arc<tokio::sync::Semaphore>,
}

/// A running live view: hand `tap` to `PipelineOptions::ui`.
pub struct Ui {
    pub tap: Arc<Tap>,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("--ui-fps must be within 0.1..30, got {0}")]
    Fps(f32),
    #[error("cannot serve the live view on {addr} (port taken? pass another with --ui HOST:PORT): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds (a taken port fails here, at start-up) and serves in the background.
pub fn start(o: UiOptions) -> Result<Ui, UiError> {
    if !(0.1..=30.0).contains(&o.fps) {
        return Err(UiError::Fps(o.fps));
    }
    let bind_err = |source| UiError::Bind {
        addr: o.addr,
        source,
    };
    let tap = Tap::new(TapSettings {
        fps: o.fps,
        width: defaults::UI_WIDTH,
        quality: defaults::UI_JPEG_QUALITY,
        events: defaults::UI_EVENTS,
    })
    .map_err(bind_err)?;
    let ctx = Arc::new(UiContext {
        tap: tap.clone(),
        control: o.control,
        threads: o.threads,
        fps: o.fps,
        source: o.source,
        snapshots: o.snapshots,
        crop_thumbs: o.crop_thumbs,
        streams: Arc::new(tokio::sync::Semaphore::new(defaults::UI_MAX_STREAMS)),
    });
    let addr = server::serve(o.addr, ctx).map_err(bind_err)?;
    Ok(Ui { tap, addr })
}

/// `--ui` value: HOST:PORT (`--ui` alone gives [`defaults::UI_ADDR`]).
pub fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("--ui '{v}' is not HOST:PORT, e.g. {}", defaults::UI_ADDR))
}

/// Snapshot references are `<camera>/<day>/<track>.jpg`: plain names, no `..`, no root.
pub fn snapshot_ref_ok(r: &str) -> bool {
    r.len() <= 200
        && r.ends_with(".jpg")
        && r.split('/').count() <= 4
        && r.split('/').all(|c| {
            !c.is_empty()
                && !c.starts_with('.')
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_refs_are_plain_relative_names() {
        assert!(snapshot_ref_ok("cam1/2026-01-01/1767261600-7.jpg"));
        for bad in [
            "../etc/passwd.jpg",
            "/abs.jpg",
            "cam1//x.jpg",
            "cam1/.hidden.jpg",
            "cam1/x.png",
            "a/b/c/d/e.jpg",
            "cam 1/x.jpg",
            "cam1/%2e%2e/x.jpg",
        ] {
            assert!(!snapshot_ref_ok(bad), "{bad}");
        }
    }

    #[test]
    fn addresses_parse() {
        assert!(parse_addr(defaults::UI_ADDR).is_ok());
        assert!(parse_addr("[::1]:0").is_ok());
        assert!(parse_addr("localhost").unwrap_err().contains("HOST:PORT"));
    }
}
