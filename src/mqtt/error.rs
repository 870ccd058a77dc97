//! What can go wrong in the MQTT room. Texts name the problem and what to do, and never
//! carry credentials: URLs pass through `crate::redact` before they land here.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    #[error("message of {size} bytes exceeds the {limit}-byte limit; lower the detection count or raise minConfidence")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "message of {size} bytes is larger than the whole outbox ({limit} bytes); raise --queue-mb"
    )]
    LargerThanQueue { size: usize, limit: usize },
    #[error(
        "invalid topic '{0}': it must be non-empty, at most 65535 bytes, without '+', '#' or NUL"
    )]
    BadTopic(String),
    #[error("a reported-properties patch must be a JSON object: {0}")]
    BadPatch(String),
    #[error("acknowledgement for packet id {0}, which is not in flight")]
    UnknownAck(u16),
    #[error("invalid MQTT URL '{url}': {message} (expected mqtt://[USER:PASSWORD@]HOST[:PORT])")]
    BadUrl { url: String, message: String },
    #[error("cannot start the MQTT worker: {0}")]
    Start(String),
}

impl MqttError {
    /// A URL error; only its scheme and host are shown, so no caller can forget to redact
    /// and a password typed raw (`user:pa/ss@broker`, or with no `mqtt://`) never shows.
    pub(crate) fn bad_url(url: &str, message: &str) -> MqttError {
        MqttError::BadUrl {
            url: crate::redact::origin(url),
            message: message.to_string(),
        }
    }
}

/// MQTT topic names may not hold wildcards (rumqttc refuses them at send time, which would
/// stall the outbox), NUL, or exceed the 16-bit length field.
pub fn check_topic(topic: &str) -> Result<(), MqttError> {
    let ok =
        !topic.is_empty() && topic.len() <= u16::MAX as usize && !topic.contains(['+', '#', '\0']);
    if ok {
        Ok(())
    } else {
        let shown: String = topic.chars().take(120).collect();
        Err(MqttError::BadTopic(shown))
    }
}
