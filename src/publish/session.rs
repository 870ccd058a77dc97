//! The one sink that forwards to an MQTT session. Plain `--mqtt` and EdgeHub differ only in
//! how a message maps to a topic, which is the sink's parameter.

use std::time::Duration;

use super::{OutMessage, PublishError, Sink, SinkStats};
use crate::mqtt::{MqttUrl, QueueLimits, Session, SessionConfig};

/// Maps a message to the topic it is published on.
pub type TopicFn = Box<dyn Fn(&OutMessage) -> String + Send>;

pub struct SessionSink {
    name: &'static str,
    session: Session,
    topic: TopicFn,
}

impl SessionSink {
    pub fn new(name: &'static str, session: Session, topic: TopicFn) -> SessionSink {
        SessionSink {
            name,
            session,
            topic,
        }
    }

    /// The plain `--mqtt mqtt://host:port --topic T` sink: frame messages on `T`, scene
    /// messages on `T/events` and `T/counts`.
    pub fn plain_mqtt(
        url: &str,
        topic: &str,
        client_id: &str,
        queue: QueueLimits,
    ) -> Result<SessionSink, PublishError> {
        let url = MqttUrl::parse(url)?;
        crate::mqtt::error::check_topic(topic)?;
        let mut config = SessionConfig::plain(&url.host, url.port, client_id);
        config.outbox.queue = queue;
        if let Some(creds) = url.credentials {
            config.credentials = Some(std::sync::Arc::new(move || Ok(Some(creds.clone()))));
        }
        let topic = topic.to_string();
        Ok(SessionSink::new(
            "mqtt",
            Session::start(config, None)?,
            Box::new(move |m| match &m.output {
                Some(o) => format!("{topic}/{o}"),
                None => topic.clone(),
            }),
        ))
    }
}

impl Sink for SessionSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send(&mut self, msg: OutMessage) -> Result<(), PublishError> {
        let topic = (self.topic)(&msg);
        Ok(self.session.publish(topic, msg.body)?)
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        self.session.flush(timeout)
    }

    fn stats(&self) -> SinkStats {
        let o = self.session.stats().outbox;
        SinkStats {
            published: o.acked,
            failed: o.rejected,
            dropped: o.dropped,
            queued: o.queued + o.inflight + o.control.queued,
        }
    }
}
