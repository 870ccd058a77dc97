//! Events that share a message. A hub meters messages (IoT Hub: one per 4 KB chunk), and on a
//! busy scene most event messages are a few hundred bytes, so events of the same kind that
//! happen close together go out as one message: same output and same routing properties
//! (`eventType`, `events`, `label`, `zone`, `line`), so a route filter picks exactly what it
//! picked before. A message never grows past one metering chunk, and an event waits at most
//! the window in stream time; a source that sends no frame for a window of wall-clock time
//! (stalled) has its batches flushed by [`EventBatch::idle`]. Stream time alone decides while
//! frames flow, so a file gives the same messages however fast it is processed.
//!
//! Order is kept per track: batches go out in the order they opened, and an event joins a
//! batch only if no later batch holds an event of its track, so a track's `new` always
//! precedes its `update`s and `end`, and `zoneEntered`, `zoneLeft`, `zoneEntered` stay in that
//! order. Counts messages pass straight through.

use std::time::{Duration, Instant};

use super::message::{SceneMessage, OUTPUT_EVENTS};

/// Bytes of inferences plus routing properties (with the growing `trackId` list) a batch
/// stays under: an IoT Hub metering chunk (4 KB) less 512 for the body's envelope and the
/// `source`/`model` properties added when it is sent (names of at most 64 characters).
pub const MAX_BATCH_BYTES: usize = 3_584;

/// One open batch: events with equal routing properties.
#[derive(Debug)]
struct Group {
    key: Vec<(String, String)>,
    message: SceneMessage,
    track_ids: Vec<String>,
    opened_pts: u64,
    bytes: usize,
}

#[derive(Debug)]
pub struct EventBatch {
    window_ms: u64,
    max_bytes: usize,
    /// In opening order.
    open: Vec<Group>,
    /// When the source last delivered a frame.
    last_frame: Option<Instant>,
    /// The last frame's stream time: a source that restarts its clock flushes everything.
    last_pts: u64,
}

impl EventBatch {
    /// `window_ms` 0: every event goes out on its own, at once (no batching).
    pub fn new(window_ms: u64) -> Self {
        EventBatch {
            window_ms,
            max_bytes: MAX_BATCH_BYTES,
            open: Vec::new(),
            last_frame: None,
            last_pts: 0,
        }
    }

    pub fn set_window_ms(&mut self, window_ms: u64) {
        self.window_ms = window_ms;
    }

    /// Tracks with events waiting for their batch to close (a track counted once per batch).
    pub fn pending(&self) -> usize {
        self.open.iter().map(|g| g.track_ids.len()).sum()
    }

    /// One frame's messages in (at stream time `pts_ms`), what is ready to send out.
    pub fn push(
        &mut self,
        messages: Vec<SceneMessage>,
        pts_ms: u64,
        now: Instant,
    ) -> Vec<SceneMessage> {
        self.last_frame = Some(now);
        // A rebuilt source (reconnect, new input size) starts its stream time again: its
        // open batches would wait for a time that may be an hour away.
        let mut out = if pts_ms < self.last_pts {
            self.flush()
        } else {
            self.due(pts_ms)
        };
        self.last_pts = pts_ms;
        for m in messages {
            if self.window_ms == 0 || m.output != OUTPUT_EVENTS {
                out.push(m);
                continue;
            }
            let key = routing_key(&m);
            let id = track_id(&m);
            let size = body_bytes(&m) + id.len() + 1;
            // The newest batch of this kind, unless a later batch holds this track already.
            let target = self
                .open
                .iter()
                .rposition(|g| g.key == key)
                .filter(|&i| !self.open[i + 1..].iter().any(|g| g.track_ids.contains(&id)));
            match target {
                Some(i) if self.open[i].bytes + size <= self.max_bytes => {
                    merge(&mut self.open[i], m, id, size)
                }
                Some(i) => {
                    // Full: it goes out (with everything opened before it) and a new one
                    // starts, so no message outgrows a metering chunk.
                    out.extend(self.close_through(i));
                    self.open.push(open(key, m, id, size, pts_ms));
                }
                None => self.open.push(open(key, m, id, size, pts_ms)),
            }
        }
        out
    }

    /// Everything, once the source has sent no frame for a whole window of wall-clock time
    /// (a stalled camera's events still go out).
    pub fn idle(&mut self, now: Instant) -> Vec<SceneMessage> {
        let window = Duration::from_millis(self.window_ms);
        match self.last_frame {
            Some(t) if now.saturating_duration_since(t) >= window => self.flush(),
            _ => Vec::new(),
        }
    }

    /// Batches whose window has passed in stream time.
    fn due(&mut self, pts_ms: u64) -> Vec<SceneMessage> {
        let last_due = self
            .open
            .iter()
            .rposition(|g| pts_ms >= g.opened_pts.saturating_add(self.window_ms));
        match last_due {
            Some(i) => self.close_through(i),
            None => Vec::new(),
        }
    }

    /// Everything still open (end of stream, source gone, model swap).
    pub fn flush(&mut self) -> Vec<SceneMessage> {
        match self.open.len() {
            0 => Vec::new(),
            n => self.close_through(n - 1),
        }
    }

    /// Closes groups `0..=i` in opening order.
    fn close_through(&mut self, i: usize) -> Vec<SceneMessage> {
        self.open.drain(..=i).map(close).collect()
    }
}

/// The properties a route can filter on: all but the track id, which is per event.
fn routing_key(m: &SceneMessage) -> Vec<(String, String)> {
    m.properties
        .iter()
        .filter(|(k, _)| k != "trackId")
        .cloned()
        .collect()
}

fn body_bytes(m: &SceneMessage) -> usize {
    m.body
        .inferences
        .iter()
        .map(|i| serde_json::to_vec(i).map_or(0, |v| v.len() + 1))
        .sum()
}

fn track_id(m: &SceneMessage) -> String {
    m.property("trackId").unwrap_or_default().to_string()
}

fn open(
    key: Vec<(String, String)>,
    message: SceneMessage,
    id: String,
    size: usize,
    pts: u64,
) -> Group {
    let props: usize = key.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    Group {
        key,
        track_ids: vec![id],
        message,
        opened_pts: pts,
        bytes: props + size,
    }
}

fn merge(g: &mut Group, m: SceneMessage, id: String, size: usize) {
    if !g.track_ids.contains(&id) {
        g.track_ids.push(id);
    }
    g.message.body.frame.pts_ms = g.message.body.frame.pts_ms.max(m.body.frame.pts_ms);
    g.message.body.inferences.extend(m.body.inferences);
    g.bytes += size;
}

/// The batch as one message: `trackId` lists its tracks, comma-separated, in order.
fn close(g: Group) -> SceneMessage {
    let mut m = g.message;
    for (k, v) in &mut m.properties {
        if k == "trackId" {
            *v = g.track_ids.join(",");
        }
    }
    m
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
