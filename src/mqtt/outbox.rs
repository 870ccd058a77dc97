//! The ordered, bounded outbox of QoS 1 publishes: pure protocol state, in the manner of
//! rumqttc's `MqttState` (no sockets, no clocks). The session feeds it what to send, tells
//! it which packet id each publish got and which were acknowledged, and after a
//! disconnect puts the unacknowledged ones back at the front, in their original order.
//!
//! Telemetry waiting here is bounded by count and by bytes; beyond either bound the oldest
//! waiting message is dropped and counted (delivery is ordered, not guaranteed). Control
//! messages go first, through their own coalescing [`ControlQueue`].

use std::collections::VecDeque;

use super::control_queue::{ControlMessage, ControlQueue, ControlStats};
use super::error::{check_topic, MqttError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(topic: impl Into<String>, payload: Vec<u8>) -> Message {
        Message {
            topic: topic.into(),
            payload,
        }
    }

    /// What the message costs the outbox's byte bound.
    fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// How much telemetry may wait while the broker is unreachable (`--queue`, `--queue-mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> QueueLimits {
        QueueLimits {
            messages: crate::defaults::QUEUE_MESSAGES,
            bytes: crate::defaults::QUEUE_MB as usize * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    pub queue: QueueLimits,
    /// Largest payload accepted (EdgeHub's 256 KiB).
    pub max_message_bytes: usize,
    /// Publishes sent but not yet acknowledged, at most.
    pub max_inflight: usize,
    /// Control messages waiting, at most.
    pub control_messages: usize,
}

impl Default for OutboxConfig {
    fn default() -> OutboxConfig {
        OutboxConfig {
            queue: QueueLimits::default(),
            max_message_bytes: crate::defaults::MAX_MESSAGE_BYTES,
            max_inflight: crate::defaults::MQTT_MAX_INFLIGHT,
            control_messages: crate::defaults::CONTROL_QUEUE_MESSAGES,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Telemetry waiting to be sent.
    pub queued: u64,
    pub queued_bytes: u64,
    /// Sent (telemetry and control), not yet acknowledged.
    pub inflight: u64,
    /// Telemetry acknowledged by the broker.
    pub acked: u64,
    /// Control messages acknowledged by the broker.
    pub control_acked: u64,
    /// Telemetry dropped, oldest first, beyond the count or byte bound.
    pub dropped: u64,
    pub dropped_bytes: u64,
    /// Telemetry refused at enqueue (too large, bad topic).
    pub rejected: u64,
    pub control: ControlStats,
}

#[derive(Debug)]
enum Sent {
    Telemetry(Message),
    Control(ControlMessage),
}

#[derive(Debug)]
struct Inflight {
    sent: Sent,
    /// Given by the client when it writes the publish; acks name it.
    pkid: Option<u16>,
}

#[derive(Debug)]
pub struct Outbox {
    config: OutboxConfig,
    queue: VecDeque<Message>,
    queued_bytes: usize,
    control: ControlQueue,
    inflight: VecDeque<Inflight>,
    stats: OutboxStats,
}

impl Outbox {
    pub fn new(config: OutboxConfig) -> Outbox {
        Outbox {
            control: ControlQueue::new(config.control_messages, config.max_message_bytes),
            config,
            queue: VecDeque::new(),
            queued_bytes: 0,
            inflight: VecDeque::new(),
            stats: OutboxStats::default(),
        }
    }

    /// Queues telemetry. Beyond the count or byte bound the oldest waiting message is
    /// dropped (and counted); a message that can never fit is refused with an error.
    pub fn push(&mut self, msg: Message) -> Result<(), MqttError> {
        if let Err(e) = self.check(&msg) {
            self.stats.rejected += 1;
            return Err(e);
        }
        self.queued_bytes += msg.size();
        self.queue.push_back(msg);
        self.trim();
        Ok(())
    }

    fn check(&self, msg: &Message) -> Result<(), MqttError> {
        check_topic(&msg.topic)?;
        let limit = self.config.max_message_bytes;
        if msg.payload.len() > limit {
            return Err(MqttError::TooLarge {
                size: msg.payload.len(),
                limit,
            });
        }
        if msg.size() > self.config.queue.bytes {
            return Err(MqttError::LargerThanQueue {
                size: msg.size(),
                limit: self.config.queue.bytes,
            });
        }
        Ok(())
    }

    fn trim(&mut self) {
        let max_messages = self.config.queue.messages.max(1);
        while self.queue.len() > max_messages || self.queued_bytes > self.config.queue.bytes {
            let Some(old) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= old.size();
            self.stats.dropped += 1;
            self.stats.dropped_bytes += old.size() as u64;
        }
    }

    /// Queues a control message; it goes before any telemetry.
    pub fn push_control(&mut self, msg: ControlMessage) -> Result<(), MqttError> {
        self.control.push(msg)
    }

    /// Moves the next message (control first) in flight and returns a copy to send, or
    /// None when nothing waits or the in-flight window is full.
    pub fn take_next(&mut self) -> Option<Message> {
        if self.inflight.len() >= self.config.max_inflight.max(1) {
            return None;
        }
        let sent = match self.control.pop() {
            Some(c) => Sent::Control(c),
            None => {
                let m = self.queue.pop_front()?;
                self.queued_bytes -= m.size();
                Sent::Telemetry(m)
            }
        };
        let copy = match &sent {
            Sent::Telemetry(m) => m.clone(),
            Sent::Control(c) => c.msg.clone(),
        };
        self.inflight.push_back(Inflight { sent, pkid: None });
        Some(copy)
    }

    /// The client refused the message `take_next` just returned (its queue is full):
    /// it goes back to the front, to be taken again.
    pub fn return_unsent(&mut self) {
        if let Some(last) = self.inflight.pop_back() {
            self.put_back(vec![last]);
        }
    }

    /// The client wrote a publish with packet id `pkid`: publishes go out in the order they
    /// were taken, so it is the oldest one without an id. False when none is waiting.
    pub fn sent(&mut self, pkid: u16) -> bool {
        match self.inflight.iter_mut().find(|i| i.pkid.is_none()) {
            Some(i) => {
                i.pkid = Some(pkid);
                true
            }
            None => false,
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn ack(&mut self, pkid: u16) -> Result<(), MqttError> {
        let pos = self
            .inflight
            .iter()
            .position(|i| i.pkid == Some(pkid))
            .ok_or(MqttError::UnknownAck(pkid))?;
        match self.inflight.remove(pos).map(|i| i.sent) {
            Some(Sent::Telemetry(_)) => self.stats.acked += 1,
            Some(Sent::Control(_)) => self.stats.control_acked += 1,
            None => {}
        }
        Ok(())
    }

    /// After a disconnect: everything unacknowledged goes back to the front of its queue,
    /// in its original order, to be sent again on the next connection. Returns how many.
    pub fn requeue(&mut self) -> usize {
        let all: Vec<Inflight> = self.inflight.drain(..).collect();
        let n = all.len();
        self.put_back(all);
        // Requeued telemetry counts against the bounds again; the oldest goes first.
        self.trim();
        n
    }

    fn put_back(&mut self, items: Vec<Inflight>) {
        let mut control = Vec::new();
        for item in items.into_iter().rev() {
            match item.sent {
                Sent::Telemetry(m) => {
                    self.queued_bytes += m.size();
                    self.queue.push_front(m);
                }
                Sent::Control(c) => control.push(c),
            }
        }
        control.reverse();
        self.control.requeue_front(control);
    }

    /// Messages accepted and not yet acknowledged: waiting plus in flight.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.control.len() + self.inflight.len()
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            queued: self.queue.len() as u64,
            queued_bytes: self.queued_bytes as u64,
            inflight: self.inflight.len() as u64,
            control: self.control.stats(),
            ..self.stats
        }
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
