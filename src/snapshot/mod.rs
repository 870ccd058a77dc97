//! Best snapshot per track, written as JPEG under a local folder and uploaded to Blob Storage
//! on IoT Edge (any Azure Blob endpoint) through a queue kept on disk.
//!
//! - [`best`]: which frame is a track's best picture (pure).
//! - [`store`]: the JPEG files, their paths and their retention.
//! - [`journal`]: the on-disk upload queue (survives restarts).
//! - [`blob`]: connection string and container name, parsed and validated (pure).
//! - [`upload`]: the background uploader with retry and backoff.
//! - [`snapshotter`]: all of the above behind one `offer` call, for the pipeline.

pub mod best;
pub mod blob;
pub mod journal;
pub mod snapshotter;
pub mod store;
pub mod upload;
mod worker;

use std::path::PathBuf;

pub use best::BestSnapshots;
pub use blob::{BlobConfig, ConnectionString, ContainerName};
pub use snapshotter::{SnapshotRef, SnapshotSettings, Snapshotter};
pub use store::{Retention, SavedSnapshot, SnapshotStore};
pub use upload::{UploadState, UploadStatus, Uploader, UploaderConfig};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
    #[error(
        "invalid blob connection string: {0}; expected \
         `DefaultEndpointsProtocol=http;BlobEndpoint=http://<module>:11002/<account>;\
         AccountName=<account>;AccountKey=<base64 key>`"
    )]
    ConnectionString(String),
    #[error("invalid blob container name {name:?}: {reason} (3-63 characters: lowercase letters, digits and single hyphens, starting and ending with a letter or digit)")]
    ContainerName { name: String, reason: &'static str },
    #[error("snapshot upload queue is full ({max} pending); the snapshot stays local only")]
    QueueFull { max: usize },
    #[error("blob storage: {0}")]
    Blob(String),
}

impl SnapshotError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SnapshotError::Io {
            path: path.into(),
            source,
        }
    }
}
