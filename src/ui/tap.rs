//! The pipeline's window for the page. The inference thread calls [`Tap::frame`] once per
//! inferred frame; with nobody watching that is a few atomic loads (and, on frames with
//! scene events, a copy of the events into the ring). While someone watches, at most
//! `fps` frames per second are copied out and drawn + encoded on the `ui-encode` thread,
//! never on the inference thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::events::EventRing;
use super::render::{self, Overlay};
use crate::engine::Detection;
use crate::ingest::Frame;
use crate::message::InferenceMessage;
use crate::pipeline::Stats;
use crate::scene::{SceneConfig, SceneMessage};

/// One inferred frame as the inference stage has it.
pub struct TapFrame<'a> {
    pub frame: &'a Frame,
    /// What users see (at or above their threshold), in `message.inferences` order.
    pub detections: &'a [Detection],
    pub message: &'a InferenceMessage,
    /// The zones and lines of this frame's source: what the picture draws.
    pub scene: &'a Arc<SceneConfig>,
    /// The top-level zones and lines: what the editor shows and applies to (several
    /// sources may each have their own; see `LiveSettings::scene_for`).
    pub editable: &'a Arc<SceneConfig>,
    pub events: &'a [SceneMessage],
    /// The shown source's counts now (computed only while watched).
    pub counts: Option<&'a SceneMessage>,
    pub backend: &'a str,
    pub labels: &'a [String],
}

/// The latest encoded picture; `seq` grows by one per picture.
#[derive(Clone)]
pub struct Jpeg {
    pub seq: u64,
    pub bytes: Bytes,
}

/// Model and backend serving now, for the stats panel and the class picker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Serving {
    pub model: String,
    pub version: String,
    pub backend: String,
    pub labels: Vec<String>,
}

/// What the encoder needs from one frame (its own copy).
struct Capture {
    frame: Frame,
    detections: Vec<Detection>,
    ids: Vec<Option<String>>,
    scene: Arc<SceneConfig>,
}

pub struct TapSettings {
    pub fps: f32,
    pub width: u32,
    pub quality: u8,
    pub events: usize,
}

pub struct Tap {
    settings: TapSettings,
    epoch: Instant,
    /// Open live streams.
    viewers: AtomicUsize,
    /// Until when (ms since `epoch`) a `/frame.jpg` poller counts as a viewer.
    polled_until: AtomicU64,
    /// Earliest time (ms since `epoch`) of the next capture: the fps cap.
    next_capture: AtomicU64,
    slot: Mutex<Option<Capture>>,
    wake: Condvar,
    jpeg: tokio::sync::watch::Sender<Option<Jpeg>>,
    /// Pictures encoded so far (tests and the cost figures read it).
    pub encoded: AtomicU64,
    events: Mutex<EventRing>,
    scene: ArcSwap<SceneConfig>,
    serving: ArcSwap<Serving>,
    stats: ArcSwap<Option<Arc<Stats>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tap {
    /// A tap and its encoder thread (which ends when the last `Arc<Tap>` goes).
    pub fn new(settings: TapSettings) -> std::io::Result<Arc<Tap>> {
        let (jpeg, _) = tokio::sync::watch::channel(None);
        let tap = Arc::new(Tap {
            events: Mutex::new(EventRing::new(settings.events)),
            settings,
            epoch: Instant::now(),
            viewers: AtomicUsize::new(0),
            polled_until: AtomicU64::new(0),
            next_capture: AtomicU64::new(0),
            slot: Mutex::new(None),
            wake: Condvar::new(),
            jpeg,
            encoded: AtomicU64::new(0),
            scene: ArcSwap::from_pointee(SceneConfig::default()),
            serving: ArcSwap::from_pointee(Serving::default()),
            stats: ArcSwap::from_pointee(None),
        });
        let weak = Arc::downgrade(&tap);
        std::thread::Builder::new()
            .name("ui-encode".into())
            .spawn(move || encode_loop(weak))?;
        Ok(tap)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Called by the pipeline at start: its counters and the scene it starts with.
    pub fn attach(&self, stats: Arc<Stats>, scene: Arc<SceneConfig>) {
        self.stats.store(Arc::new(Some(stats)));
        self.scene.store(scene);
    }

    pub fn stats(&self) -> Option<Arc<Stats>> {
        (**self.stats.load()).clone()
    }

    pub fn scene(&self) -> Arc<SceneConfig> {
        self.scene.load_full()
    }

    pub fn serving(&self) -> Arc<Serving> {
        self.serving.load_full()
    }

    /// Someone is watching: a stream is open, or `/frame.jpg` was asked for lately.
    pub fn watched(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0
            || self.polled_until.load(Ordering::Relaxed) > self.now_ms()
    }

    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// A live stream opens; the guard closes it.
    pub fn viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        ViewerGuard(self.clone())
    }

    /// A `/frame.jpg` request: keeps pictures coming for the next 2 seconds.
    pub fn polled(&self) {
        self.polled_until
            .store(self.now_ms() + 2000, Ordering::Relaxed);
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Jpeg>> {
        self.jpeg.subscribe()
    }

    pub fn with_events<R>(&self, f: impl FnOnce(&EventRing) -> R) -> R {
        f(&lock(&self.events))
    }

    /// The pipeline's per-frame call. Cheap unless watched (see the module docs).
    pub fn frame(&self, f: &TapFrame) {
        if !Arc::ptr_eq(&self.scene.load(), f.editable) {
            self.scene.store(f.editable.clone());
            // Counts of shapes that no longer exist go; a source's own shapes stay.
            let (s, own) = (f.editable.clone(), f.scene.clone());
            lock(&self.events).retain_counts(|k| match k.split_once(':') {
                Some(("zone", n)) => s.zones.contains_key(n) || own.zones.contains_key(n),
                Some(("line", n)) => s.lines.contains_key(n) || own.lines.contains_key(n),
                _ => false,
            });
        }
        self.follow_serving(f);
        if !f.events.is_empty() {
            let time = chrono::Local::now().format("%H:%M:%S").to_string();
            lock(&self.events).push_from(&f.message.source, f.events, &time);
        }
        if let Some(c) = f.counts {
            lock(&self.events).push_from(&f.message.source, std::slice::from_ref(c), "");
        }
        if !self.watched() {
            return;
        }
        let now = self.now_ms();
        let next = self.next_capture.load(Ordering::Relaxed);
        if now < next {
            return;
        }
        let period = (1000.0 / self.settings.fps.max(0.1)) as u64;
        self.next_capture.store(now + period, Ordering::Relaxed);
        let frame = f.frame.clone();
        let capture = Capture {
            frame,
            detections: f.detections.to_vec(),
            ids: f
                .message
                .inferences
                .iter()
                .map(|i| i.entity.id.clone())
                .collect(),
            scene: f.scene.clone(),
        };
        // Newest wins: an encoder still busy with the last one skips this one's predecessor.
        *lock(&self.slot) = Some(capture);
        self.wake.notify_one();
    }

    fn follow_serving(&self, f: &TapFrame) {
        let s = self.serving.load();
        if s.model == f.message.model.name
            && s.version == f.message.model.version
            && s.backend == f.backend
        {
            return;
        }
        self.serving.store(Arc::new(Serving {
            model: f.message.model.name.clone(),
            version: f.message.model.version.clone(),
            backend: f.backend.to_string(),
            labels: f.labels.to_vec(),
        }));
    }

    fn next_capture_wait(&self, timeout: Duration) -> Option<Capture> {
        let mut slot = lock(&self.slot);
        if slot.is_none() {
            slot = self
                .wake
                .wait_timeout(slot, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        slot.take()
    }

    fn encode(&self, c: Capture) {
        let Some(mut img) = crate::pipeline::scene_stage::frame_picture(&c.frame) else {
            return;
        };
        if img.width() > self.settings.width {
            let h = (img.height() as u64 * self.settings.width as u64 / img.width() as u64).max(1)
                as u32;
            img = image::imageops::resize(
                &img,
                self.settings.width,
                h,
                image::imageops::FilterType::Triangle,
            );
        }
        let caption = format!(
            "{}  frame {}",
            chrono::Local::now().format("%H:%M:%S"),
            c.frame.seq
        );
        render::draw(
            &mut img,
            &Overlay {
                detections: &c.detections,
                ids: &c.ids,
                scene: &c.scene,
                caption: &caption,
            },
        );
        match render::jpeg(&img, self.settings.quality) {
            Ok(bytes) => {
                let seq = self.encoded.fetch_add(1, Ordering::Relaxed) + 1;
                self.jpeg.send_replace(Some(Jpeg {
                    seq,
                    bytes: Bytes::from(bytes),
                }));
            }
            Err(e) => tracing::warn!(error = %e, "live view: cannot encode a frame"),
        }
    }
}

/// Counts one open live stream while it lives.
pub struct ViewerGuard(Arc<Tap>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn encode_loop(tap: Weak<Tap>) {
    loop {
        let Some(t) = tap.upgrade() else { return };
        if let Some(c) = t.next_capture_wait(Duration::from_millis(500)) {
            // A bug in drawing must not end the live view for the process's life.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.encode(c)));
            if r.is_err() {
                tracing::error!("live view: drawing a frame panicked; frame skipped");
            }
        }
    }
}

#[cfg(test)]
#[path = "tap_tests.rs"]
mod tests;
