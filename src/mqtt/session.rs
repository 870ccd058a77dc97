//! The I/O half of an MQTT session, rumqttc style: a cheap [`Session`] handle that
//! enqueues, and a loop on its own thread that drives rumqttc's event loop, feeds it from
//! the pure [`Outbox`], reconnects with backoff and fresh credentials, and retransmits
//! what was not acknowledged. QoS 1, clean sessions: the outbox, not the broker, keeps
//! what is unacknowledged across connections.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::Notify;

use super::control_queue::{ControlKind, ControlMessage};
use super::error::MqttError;
use super::outbox::{Message, Outbox, OutboxConfig, OutboxStats};
use crate::defaults;

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
    pub outbox: OutboxConfig,
    pub subscriptions: Vec<String>,
    /// Reconnect with fresh credentials after this long (SAS token renewal).
    pub reconnect_after: Option<Duration>,
    /// Reconnect backoff: starts here, doubles, stops growing at `max_backoff`.
    pub backoff_start: Duration,
    pub max_backoff: Duration,
}

impl SessionConfig {
    pub fn plain(host: &str, port: u16, client_id: &str) -> SessionConfig {
        SessionConfig {
            host: host.to_string(),
            port,
            client_id: client_id.to_string(),
            credentials: None,
            tls: None,
            keep_alive: defaults::MQTT_KEEP_ALIVE,
            outbox: OutboxConfig::default(),
            subscriptions: Vec::new(),
            reconnect_after: None,
            backoff_start: defaults::BACKOFF_START,
            max_backoff: defaults::BACKOFF_MAX,
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

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    pub outbox: OutboxStats,
    /// Successful connections so far (reconnects included).
    pub connects: u64,
}

struct Shared {
    outbox: Mutex<Outbox>,
    connects: AtomicU64,
    stop: AtomicBool,
    wake: Notify,
}

/// Stops the loop when the last handle goes.
struct Worker {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        stop_and_join(&self.shared, &self.thread);
    }
}

fn stop_and_join(shared: &Shared, thread: &Mutex<Option<std::thread::JoinHandle<()>>>) {
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake.notify_one();
    if let Some(h) = lock(thread).take() {
        let _ = h.join();
    }
}

/// A cheap handle: enqueue, flush, read counters. The session's thread does the rest.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
    worker: Arc<Worker>,
}

impl Session {
    /// Starts the loop; events (connects, incoming messages) go to `events`.
    pub fn start(
        config: SessionConfig,
        events: Option<crossbeam_channel::Sender<SessionEvent>>,
    ) -> Result<Session, MqttError> {
        let shared = Arc::new(Shared {
            outbox: Mutex::new(Outbox::new(config.outbox)),
            connects: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| MqttError::Start(format!("I/O runtime: {e}")))?;
        let session_loop = SessionLoop {
            config,
            shared: shared.clone(),
            events,
        };
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || runtime.block_on(session_loop.run()))
            .map_err(|e| MqttError::Start(format!("thread: {e}")))?;
        Ok(Session {
            worker: Arc::new(Worker {
                shared: shared.clone(),
                thread: Mutex::new(Some(thread)),
            }),
            shared,
        })
    }

    /// Queues telemetry; beyond the bounds the oldest queued message is dropped (and counted).
    pub fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        lock(&self.shared.outbox).push(Message::new(topic, payload))?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Queues a control message (twin, method response): sent before telemetry, coalesced
    /// by kind while disconnected, refused at once when it can never be sent.
    pub fn publish_control(
        &self,
        kind: ControlKind,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<(), MqttError> {
        lock(&self.shared.outbox).push_control(ControlMessage::new(kind, topic, payload))?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Messages accepted but not yet acknowledged by the broker.
    pub fn pending(&self) -> usize {
        lock(&self.shared.outbox).pending()
    }

    /// Waits until everything accepted is acknowledged or `timeout` passes; returns what is left.
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

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            outbox: lock(&self.shared.outbox).stats(),
            connects: self.shared.connects.load(Ordering::SeqCst),
        }
    }

    /// Stops the loop (also done when the last handle is dropped); `flush` first to
    /// deliver what is queued.
    pub fn stop(&self) {
        stop_and_join(&self.shared, &self.worker.thread);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the outbox with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The driving half: owns the connection, one at a time.
struct SessionLoop {
    config: SessionConfig,
    shared: Arc<Shared>,
    events: Option<crossbeam_channel::Sender<SessionEvent>>,
}

impl SessionLoop {
    fn emit(&self, e: SessionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    async fn run(self) {
        let (host, port) = (&self.config.host, self.config.port);
        let mut backoff = self.config.backoff_start;
        while !self.stopping() {
            // Credentials may block (workload API over a socket): keep them off the event loop.
            let cfg = self.config.clone();
            let opts = tokio::task::spawn_blocking(move || connect_options(&cfg))
                .await
                .unwrap_or_else(|_| Err("credential provider panicked".to_string()));
            let reason = match opts {
                Ok(opts) => {
                    let cap = self.config.outbox.max_inflight * 2 + 16;
                    let (client, eventloop) = AsyncClient::new(opts, cap);
                    let (reason, was_connected) = self.drive(client, eventloop).await;
                    if was_connected {
                        backoff = self.config.backoff_start;
                    }
                    reason
                }
                Err(e) => e,
            };
            if self.stopping() {
                break;
            }
            tracing::warn!(%host, port, %reason, retry_in_s = backoff.as_secs_f32(), "MQTT connection lost; messages stay queued");
            self.emit(SessionEvent::Disconnected(reason));
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = self.shared.wake.notified() => if self.stopping() { return; },
                }
            }
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// Drives one connection until it fails, a renewal is due, or stop. Unacknowledged
    /// messages go back to the front of the outbox, in order, before returning.
    async fn drive(&self, client: AsyncClient, mut eventloop: EventLoop) -> (String, bool) {
        let mut connected = false;
        let renew_at = self
            .config
            .reconnect_after
            .map(|d| tokio::time::Instant::now() + d);
        let reason = loop {
            if self.stopping() {
                let _ = client.try_disconnect();
                break "stopped".to_string();
            }
            if connected {
                self.fill(&client);
            }
            let renew = async {
                match renew_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(ev) => {
                        if self.on_event(&client, ev) {
                            connected = true;
                        }
                    }
                    // rumqttc's texts name the problem, never the password; URLs are cut anyway.
                    Err(e) => break crate::redact::text(&e.to_string()),
                },
                _ = self.shared.wake.notified() => {}
                _ = renew => {
                    let _ = client.try_disconnect();
                    break "credentials renewal".to_string();
                }
            }
        };
        let requeued = lock(&self.shared.outbox).requeue();
        if requeued > 0 {
            tracing::debug!(
                requeued,
                "unacknowledged messages go out again on reconnect"
            );
        }
        (reason, connected)
    }

    /// Handles one event; true on a (re)connect.
    fn on_event(&self, client: &AsyncClient, ev: Event) -> bool {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.shared.connects.fetch_add(1, Ordering::SeqCst);
                for topic in &self.config.subscriptions {
                    let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                tracing::info!(host = %self.config.host, port = self.config.port, "MQTT connected");
                self.emit(SessionEvent::Connected);
                return true;
            }
            Event::Incoming(Packet::Publish(p)) => self.emit(SessionEvent::Message {
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
            }),
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Err(e) = lock(&self.shared.outbox).ack(ack.pkid) {
                    tracing::debug!(error = %e, "ignored");
                }
            }
            Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) => {
                lock(&self.shared.outbox).sent(pkid);
            }
            _ => {}
        }
        false
    }

    /// Hands the client as much as the in-flight window allows.
    fn fill(&self, client: &AsyncClient) {
        let mut outbox = lock(&self.shared.outbox);
        while let Some(m) = outbox.take_next() {
            if client
                .try_publish(m.topic, QoS::AtLeastOnce, false, m.payload)
                .is_err()
            {
                // Request channel full: wait for the event loop to drain it.
                outbox.return_unsent();
                return;
            }
        }
    }
}

fn connect_options(config: &SessionConfig) -> Result<MqttOptions, String> {
    let mut opts = MqttOptions::new(&config.client_id, &config.host, config.port);
    opts.set_keep_alive(config.keep_alive);
    opts.set_clean_session(true);
    let max = config.outbox.max_message_bytes;
    opts.set_inflight(config.outbox.max_inflight.clamp(1, u16::MAX as usize) as u16);
    // Room for the topic and the packet header on top of the largest payload. Incoming
    // packets may be larger (an oversized twin document): reading it lets the control plane
    // reject it with a reason, where refusing the packet would drop the connection.
    let incoming = (max + 70 * 1024).max(crate::defaults::MAX_INCOMING_BYTES);
    opts.set_max_packet_size(incoming, max + 70 * 1024);
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
