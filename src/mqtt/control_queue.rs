//! Control messages (twin reported properties, stats, twin GETs, method responses) waiting
//! for the connection. Pure: no sockets, no clocks. While EdgeHub is down, state coalesces
//! instead of piling up: only the newest stats report is kept, and reported-properties
//! patches merge into one (newest values win), so a long outage costs one message of each,
//! not one per interval. GETs and method responses are kept in order, bounded.

use std::collections::VecDeque;

use serde_json::Value;

use super::error::{check_topic, MqttError};
use super::outbox::Message;

/// What a control message is, which decides how queued ones combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// A reported-properties patch (a JSON object): queued patches merge into one.
    Reported,
    /// A stats report: only the newest queued one is kept.
    Stats,
    /// A twin GET: kept in order (each has a request id the owner waits for).
    TwinGet,
    /// A direct-method response: kept in order.
    MethodResponse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMessage {
    pub kind: ControlKind,
    pub msg: Message,
}

impl ControlMessage {
    pub fn new(kind: ControlKind, topic: impl Into<String>, payload: Vec<u8>) -> ControlMessage {
        ControlMessage {
            kind,
            msg: Message::new(topic, payload),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlStats {
    /// Waiting now.
    pub queued: u64,
    /// Replaced by (or merged into) a newer message of the same kind.
    pub coalesced: u64,
    /// Dropped, oldest first, beyond the count bound.
    pub dropped: u64,
    /// Refused at enqueue (too large, bad topic, not a JSON object).
    pub rejected: u64,
}

#[derive(Debug)]
pub struct ControlQueue {
    max_messages: usize,
    max_message_bytes: usize,
    queue: VecDeque<ControlMessage>,
    stats: ControlStats,
}

impl ControlQueue {
    pub fn new(max_messages: usize, max_message_bytes: usize) -> ControlQueue {
        ControlQueue {
            max_messages: max_messages.max(1),
            max_message_bytes,
            queue: VecDeque::new(),
            stats: ControlStats::default(),
        }
    }

    /// Queues a control message. An oversized one is refused here, at once: put back at
    /// the front later, it would block the connection forever.
    pub fn push(&mut self, m: ControlMessage) -> Result<(), MqttError> {
        if let Err(e) = self.check(&m) {
            self.stats.rejected += 1;
            return Err(e);
        }
        match m.kind {
            ControlKind::Stats => {
                let before = self.queue.len();
                self.queue.retain(|q| q.kind != ControlKind::Stats);
                self.stats.coalesced += (before - self.queue.len()) as u64;
                self.queue.push_back(m);
            }
            ControlKind::Reported => {
                let merged = self.merge_into_last_reported(&m);
                self.queue.push_back(merged.unwrap_or(m));
            }
            ControlKind::TwinGet | ControlKind::MethodResponse => self.queue.push_back(m),
        }
        self.trim();
        Ok(())
    }

    fn check(&self, m: &ControlMessage) -> Result<(), MqttError> {
        check_topic(&m.msg.topic)?;
        let size = m.msg.payload.len();
        if size > self.max_message_bytes {
            return Err(MqttError::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        if m.kind == ControlKind::Reported {
            match serde_json::from_slice::<Value>(&m.msg.payload) {
                Ok(v) if v.is_object() => {}
                Ok(_) => return Err(MqttError::BadPatch("not an object".into())),
                Err(e) => return Err(MqttError::BadPatch(e.to_string())),
            }
        }
        Ok(())
    }

    /// Takes the newest queued patch out and returns it merged with `newer`, unless the
    /// merge would exceed the message limit (then both stay, in order).
    fn merge_into_last_reported(&mut self, newer: &ControlMessage) -> Option<ControlMessage> {
        let pos = self
            .queue
            .iter()
            .rposition(|q| q.kind == ControlKind::Reported)?;
        let mut base: Value = serde_json::from_slice(&self.queue[pos].msg.payload).ok()?;
        let patch: Value = serde_json::from_slice(&newer.msg.payload).ok()?;
        if !merge_patches(&mut base, &patch) {
            return None;
        }
        let payload = serde_json::to_vec(&base).ok()?;
        if payload.len() > self.max_message_bytes {
            return None;
        }
        self.queue.remove(pos);
        self.stats.coalesced += 1;
        // The merged patch takes the newer one's place (and request id): it must go after
        // any stats report queued in between, or older values would win.
        Some(ControlMessage::new(
            ControlKind::Reported,
            newer.msg.topic.clone(),
            payload,
        ))
    }

    fn trim(&mut self) {
        while self.queue.len() > self.max_messages {
            self.queue.pop_front();
            self.stats.dropped += 1;
        }
    }

    pub fn pop(&mut self) -> Option<ControlMessage> {
        self.queue.pop_front()
    }

    /// Puts messages that were sent but not acknowledged back at the front, in order. A
    /// stats report that a newer one has replaced meanwhile is not put back.
    pub fn requeue_front(&mut self, sent: Vec<ControlMessage>) {
        for m in sent.into_iter().rev() {
            if m.kind == ControlKind::Stats
                && self.queue.iter().any(|q| q.kind == ControlKind::Stats)
            {
                self.stats.coalesced += 1;
                continue;
            }
            self.queue.push_front(m);
        }
        self.trim();
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn stats(&self) -> ControlStats {
        ControlStats {
            queued: self.queue.len() as u64,
            ..self.stats
        }
    }
}

/// Combines two twin patches into one with the same effect as applying both in order:
/// objects merge key by key, anything else (including `null`, which deletes) replaces.
/// Returns false, leaving `base` half-merged, when no single patch can say the same: an
/// object replacing a non-object (a merge patch cannot express "replace this object").
fn merge_patches(base: &mut Value, patch: &Value) -> bool {
    let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) else {
        return false;
    };
    for (k, v) in p {
        match b.get_mut(k) {
            Some(old) if old.is_object() && v.is_object() => {
                if !merge_patches(old, v) {
                    return false;
                }
            }
            Some(_) if v.is_object() => return false,
            _ => {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    true
}

#[cfg(test)]
#[path = "control_queue_tests.rs"]
mod tests;
