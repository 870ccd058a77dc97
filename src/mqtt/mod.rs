//! Transport: a reusable MQTT 3.1.1 session (QoS 1, ordered bounded outbox, retransmission
//! after reconnect, a coalescing control queue). Pure protocol state lives in `outbox` and
//! `control_queue`, unit-tested without sockets; `session` is the I/O that drives rumqttc.
//! `publish` (sinks) and `edgehub` (the hub's topics and identity) build on it.

pub mod control_queue;
pub mod error;
pub mod outbox;
pub mod session;
pub mod url;

pub use control_queue::{ControlKind, ControlMessage, ControlQueue, ControlStats};
pub use error::MqttError;
pub use outbox::{Message, Outbox, OutboxConfig, OutboxStats, QueueLimits};
pub use session::{CredentialsFn, Session, SessionConfig, SessionEvent, SessionStats};
pub use url::MqttUrl;
