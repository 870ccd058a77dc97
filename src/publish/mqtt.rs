//! An MQTT session that never loses what it accepted: a bounded, ordered outbox
//! (oldest dropped and counted beyond its bound), QoS 1, and its own retransmission
//! after reconnect. One worker thread owns the connection; handles only enqueue.
//!
//! Used directly as the plain `--mqtt` sink, and by the EdgeHub module client.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::Notify;

use super::{Outgoing, PublishError, Sink, SinkStats};

/// Supplies (username, password) for each new connection, e.g. a fresh SAS token.
pub type CredentialsFn = Arc<dyn Fn() -> Result<Option<(String, String)>, String> + Send + Sync>;

#[derive(Clone)]
pub struct SessionConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub credentials: Option<CredentialsFn>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub keep_alive: Duration,
    /// Telemetry waiting while disconnected; beyond it the oldest is dropped.
    pub queue_capacity: usize,
    pub max_inflight: usize,
    pub subscriptions: Vec<String>,
    /// Reconnect with fresh credentials after this long (SAS token renewal).
    pub reconnect_after: Option<Duration>,
    pub max_backoff: Duration,
    pub max_message_bytes: usize,
}

impl SessionConfig {
    pub fn plain(host: &str, port: u16, client_id: &str) -> SessionConfig {
        SessionConfig {
            host: host.to_string(),
            port,
            client_id: client_id.to_string(),
            credentials: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            queue_capacity: 10_000,
            max_inflight: 16,
            subscriptions: Vec::new(),
            reconnect_after: None,
            max_backoff: Duration::from_secs(30),
            max_message_bytes: 256 * 1024,
        }
    }
}

/// What the session tells its owner.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    Connected,
    Disconnected(String),
    Message { topic: String, payload: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Pending {
    topic: String,
    payload: Vec<u8>,
    pkid: Option<u16>,
}

#[derive(Default)]
struct Shared {
    control: Mutex<VecDeque<Pending>>,
    telemetry: Mutex<VecDeque<Pending>>,
    inflight: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    connects: AtomicU64,
    connected: AtomicBool,
    stop: AtomicBool,
    wake: Notify,
}

/// A cheap handle: enqueue, flush, read counters. The worker thread does the rest.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    capacity: usize,
    max_message_bytes: usize,
    worker: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Session {
    /// Starts the worker; events (connects, incoming messages) go to `events`.
    pub fn start(
        config: SessionConfig,
        events: Option<crossbeam_channel::Sender<SessionEvent>>,
    ) -> Result<Session, PublishError> {
        let shared = Arc::new(Shared::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PublishError::Mqtt(format!("cannot start I/O runtime: {e}")))?;
        let worker_shared = shared.clone();
        let capacity = config.queue_capacity;
        let max_message_bytes = config.max_message_bytes;
        let handle = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || runtime.block_on(run(config, worker_shared, events)))
            .map_err(|e| PublishError::Mqtt(format!("cannot start MQTT thread: {e}")))?;
        Ok(Session {
            shared,
            capacity,
            max_message_bytes,
            worker: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Queues telemetry; beyond the bound the oldest queued message is dropped (and counted).
    pub fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), PublishError> {
        if payload.len() > self.max_message_bytes {
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
            return Err(PublishError::TooLarge {
                size: payload.len(),
                limit: self.max_message_bytes,
            });
        }
        {
            let mut q = lock(&self.shared.telemetry);
            while q.len() >= self.capacity.max(1) {
                q.pop_front();
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(Pending {
                topic,
                payload,
                pkid: None,
            });
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Queues a control message (twin, method response): never dropped, sent before telemetry.
    pub fn publish_control(&self, topic: String, payload: Vec<u8>) {
        lock(&self.shared.control).push_back(Pending {
            topic,
            payload,
            pkid: None,
        });
        self.shared.wake.notify_one();
    }

    /// Messages accepted but not yet acknowledged by the broker.
    pub fn pending(&self) -> usize {
        lock(&self.shared.telemetry).len()
            + lock(&self.shared.control).len()
            + self.shared.inflight.load(Ordering::SeqCst) as usize
    }

    pub fn flush(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.pending();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> SinkStats {
        SinkStats {
            published: self.shared.published.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            queued: self.pending() as u64,
        }
    }

    /// Stops the worker; call `flush` first to deliver what is queued.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        if let Some(h) = lock(&self.worker).take() {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the outbox with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run(
    config: SessionConfig,
    shared: Arc<Shared>,
    events: Option<crossbeam_channel::Sender<SessionEvent>>,
) {
    let emit = |e: SessionEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let mut backoff = Duration::from_millis(500);
    while !shared.stop.load(Ordering::SeqCst) {
        // Credentials may block (workload API over a socket): keep them off the event loop.
        let cfg = config.clone();
        let opts = tokio::task::spawn_blocking(move || connect_options(&cfg))
            .await
            .unwrap_or_else(|_| Err("credential provider panicked".to_string()));
        let reason = match opts {
            Ok(opts) => {
                let (client, eventloop) = AsyncClient::new(opts, config.max_inflight * 2 + 16);
                let (reason, was_connected) =
                    drive(&config, &shared, client, eventloop, &emit).await;
                if was_connected {
                    backoff = Duration::from_millis(500);
                }
                reason
            }
            Err(e) => e,
        };
        shared.connected.store(false, Ordering::SeqCst);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        tracing::warn!(host = %config.host, port = config.port, %reason, retry_in_s = backoff.as_secs_f32(), "MQTT connection lost; messages stay queued");
        emit(SessionEvent::Disconnected(reason));
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = shared.wake.notified() => if shared.stop.load(Ordering::SeqCst) { return; },
            }
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

fn connect_options(config: &SessionConfig) -> Result<MqttOptions, String> {
    let mut opts = MqttOptions::new(&config.client_id, &config.host, config.port);
    opts.set_keep_alive(config.keep_alive);
    opts.set_clean_session(true);
    opts.set_inflight(config.max_inflight.clamp(1, u16::MAX as usize) as u16);
    opts.set_max_packet_size(
        config.max_message_bytes + 4096,
        config.max_message_bytes + 4096,
    );
    if let Some(creds) = &config.credentials {
        if let Some((user, pass)) = creds().map_err(|e| format!("cannot get credentials: {e}"))? {
            opts.set_credentials(user, pass);
        }
    }
    if let Some(tls) = &config.tls {
        opts.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    Ok(opts)
}

/// Drives one connection until it fails, a renewal is due, or stop. Unacknowledged
/// messages go back to the front of their queue, in order, before returning.
async fn drive(
    config: &SessionConfig,
    shared: &Arc<Shared>,
    client: AsyncClient,
    mut eventloop: EventLoop,
    emit: &impl Fn(SessionEvent),
) -> (String, bool) {
    // (is_control, message) in send order.
    let mut inflight: VecDeque<(bool, Pending)> = VecDeque::new();
    let mut connected = false;
    let renew_at = config
        .reconnect_after
        .map(|d| tokio::time::Instant::now() + d);
    let reason = loop {
        if shared.stop.load(Ordering::SeqCst) {
            let _ = client.try_disconnect();
            break "stopped".to_string();
        }
        if connected {
            fill(shared, &client, &mut inflight, config.max_inflight);
        }
        let renew = async {
            match renew_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    shared.connected.store(true, Ordering::SeqCst);
                    shared.connects.fetch_add(1, Ordering::SeqCst);
                    for topic in &config.subscriptions {
                        let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                    tracing::info!(host = %config.host, port = config.port, "MQTT connected");
                    emit(SessionEvent::Connected);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    emit(SessionEvent::Message { topic: p.topic.clone(), payload: p.payload.to_vec() });
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(pos) = inflight.iter().position(|(_, m)| m.pkid == Some(ack.pkid)) {
                        inflight.remove(pos);
                        shared.inflight.fetch_sub(1, Ordering::SeqCst);
                        shared.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                    if let Some((_, m)) = inflight.iter_mut().find(|(_, m)| m.pkid.is_none()) {
                        m.pkid = Some(pkid);
                    }
                }
                Ok(_) => {}
                Err(e) => break e.to_string(),
            },
            _ = shared.wake.notified() => {}
            _ = renew => {
                let _ = client.try_disconnect();
                break "credentials renewal".to_string();
            }
        }
    };
    // Put unacknowledged messages back at the front, keeping their order.
    let n = inflight.len() as u64;
    while let Some((control, mut m)) = inflight.pop_back() {
        m.pkid = None;
        let q = if control {
            &shared.control
        } else {
            &shared.telemetry
        };
        lock(q).push_front(m);
    }
    shared.inflight.fetch_sub(n, Ordering::SeqCst);
    (reason, connected)
}

fn fill(
    shared: &Shared,
    client: &AsyncClient,
    inflight: &mut VecDeque<(bool, Pending)>,
    max_inflight: usize,
) {
    while inflight.len() < max_inflight {
        let (control, next) = match lock(&shared.control).pop_front() {
            Some(m) => (true, m),
            None => match lock(&shared.telemetry).pop_front() {
                Some(m) => (false, m),
                None => return,
            },
        };
        match client.try_publish(
            next.topic.clone(),
            QoS::AtLeastOnce,
            false,
            next.payload.clone(),
        ) {
            Ok(()) => {
                shared.inflight.fetch_add(1, Ordering::SeqCst);
                inflight.push_back((control, next));
            }
            Err(_) => {
                // Request channel full: put it back and wait for the event loop to drain.
                let q = if control {
                    &shared.control
                } else {
                    &shared.telemetry
                };
                lock(q).push_front(next);
                return;
            }
        }
    }
}

/// The plain `--mqtt mqtt://host:port --topic T` sink.
pub struct MqttSink {
    session: Session,
    topic: String,
}

impl MqttSink {
    pub fn connect(
        url: &str,
        topic: &str,
        client_id: &str,
        queue_capacity: usize,
    ) -> Result<MqttSink, PublishError> {
        let (host, port) = parse_url(url)?;
        let mut config = SessionConfig::plain(&host, port, client_id);
        config.queue_capacity = queue_capacity;
        Ok(MqttSink {
            session: Session::start(config, None)?,
            topic: topic.to_string(),
        })
    }
}

pub fn parse_url(url: &str) -> Result<(String, u16), PublishError> {
    let bad = |message: &str| PublishError::BadUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| bad("only mqtt:// is supported here"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| bad("port is not a number"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
    ))
}

impl Sink for MqttSink {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn send(&mut self, msg: Outgoing) -> Result<(), PublishError> {
        self.session.publish(self.topic.clone(), msg.body)
    }

    fn flush(&mut self, timeout: Duration) -> usize {
        self.session.flush(timeout)
    }

    fn stats(&self) -> SinkStats {
        self.session.stats()
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.session.stop();
    }
}
