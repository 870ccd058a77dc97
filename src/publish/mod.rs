//! Publish: where detections go. One `Sink` trait; stdout JSON lines, plain MQTT, or EdgeHub.

use std::time::Duration;

pub mod mqtt;
pub mod stdout;

/// One message to publish: the JSON body plus properties (EdgeHub message properties;
/// ignored by sinks that have none).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: Vec<u8>,
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("message of {size} bytes exceeds the {limit}-byte limit; lower the detection count or raise minConfidence")]
    TooLarge { size: usize, limit: usize },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
    #[error("invalid MQTT URL '{url}': {message} (expected mqtt://HOST:PORT)")]
    BadUrl { url: String, message: String },
    #[error("MQTT: {0}")]
    Mqtt(String),
}

/// Counters every sink keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SinkStats {
    pub published: u64,
    pub failed: u64,
    pub dropped: u64,
    pub queued: u64,
}

/// Counts messages and drops them: benchmarks and tests that need no output.
#[derive(Debug, Default, Clone)]
pub struct CountingSink(pub std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Sink for CountingSink {
    fn name(&self) -> &'static str {
        "count"
    }

    fn send(&mut self, _msg: Outgoing) -> Result<(), PublishError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self, _timeout: Duration) -> usize {
        0
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            published: self.0.load(std::sync::atomic::Ordering::Relaxed),
            ..Default::default()
        }
    }
}

pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// Accepts a message. Sinks that queue (MQTT) return at once.
    fn send(&mut self, msg: Outgoing) -> Result<(), PublishError>;
    /// Waits until everything accepted is delivered or `timeout` passes; returns what is left.
    fn flush(&mut self, timeout: Duration) -> usize;
    fn stats(&self) -> SinkStats;
}
