//! Publish: where detections go. One `Sink` trait; three sinks: stdout JSON lines, and one
//! [`session::SessionSink`] that forwards to an MQTT session, used for plain MQTT and for
//! EdgeHub (they differ only in how a message maps to a topic).

use std::time::Duration;

pub mod session;
pub mod stdout;

/// One message to publish: the JSON body plus properties (EdgeHub message properties;
/// sinks without properties ignore them). The sink decides the topic/output.
#[derive(Debug, Clone)]
pub struct OutMessage {
    pub body: Vec<u8>,
    pub properties: Vec<(String, String)>,
    /// `None`: the default (live) output; `Some("events")`/`Some("counts")`: scene messages.
    /// EdgeHub publishes on that output, plain MQTT on `<topic>/<output>`, stdout ignores it.
    pub output: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write to stdout: {0}")]
    Stdout(#[from] std::io::Error),
    #[error("MQTT: {0}")]
    Mqtt(#[from] crate::mqtt::MqttError),
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

    fn send(&mut self, _msg: OutMessage) -> Result<(), PublishError> {
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

/// Where the pipeline's messages leave the process (not to be confused with
/// `ingest`'s `FrameSink`, where frames enter the pipeline).
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// Accepts a message. Sinks that queue (MQTT) return at once.
    fn send(&mut self, msg: OutMessage) -> Result<(), PublishError>;
    /// Waits until everything accepted is delivered or `timeout` passes; returns what is left.
    fn flush(&mut self, timeout: Duration) -> usize;
    fn stats(&self) -> SinkStats;
}
