//! The inference stage's edges: sources joining and leaving (their tracks end), and the
//! messages that leave it (frames and scene messages, on to the sink).

use std::time::Instant;

use crossbeam_channel::Sender;

use super::{pts_ms, Envelope, InferLoop, Origin};
use crate::engine::{Detection, Engine};
use crate::ingest::Frame;
use crate::message::{FrameInfo, InferenceMessage, ModelInfo};
use crate::pipeline::sources::SourceInfo;
use crate::pipeline::LiveSettings;
use crate::publish::OutMessage;
use crate::scene::SceneMessage;

impl InferLoop {
    /// A source that joined gets its own tracker and scene.
    pub(super) fn join_source(&mut self, info: SourceInfo) {
        let id = info.id;
        let scene = self.shared.settings.load().scene_for(&info.key).clone();
        match self.tracking.factory.make(info, scene) {
            Ok(src) => {
                self.sources.insert(id, src);
            }
            Err(e) => tracing::error!(error = %e, "source has no tracker; its frames are ignored"),
        }
    }

    /// A source that left: its tracks end, its state goes. False when the sink has gone.
    pub(super) fn end_source(&mut self, id: u32) -> bool {
        let Some(mut src) = self.sources.remove(&id) else {
            return true;
        };
        let ends = src.scene.finish();
        let live = self.shared.settings.load_full();
        let engine = self.shared.engine.load_full();
        let name = src.name(&live).to_string();
        let to = (name.as_str(), &src.info.stats);
        self.publish_scene(ends, &engine, &live, to, Instant::now())
    }

    /// Event batches that waited their time out while their source sent no frame.
    /// False when the sink has gone away.
    pub(super) fn tick(&mut self, now: Instant) -> bool {
        let live = self.shared.settings.load_full();
        let engine = self.shared.engine.load_full();
        let mut ok = true;
        for src in self.sources.values_mut() {
            let due = src.scene.idle(now);
            if !due.is_empty() {
                let name = src.name(&live).to_string();
                let stats = src.info.stats.clone();
                ok &= Self::send_scene(&self.messages, due, &engine, &live, (&name, &stats), now);
            }
        }
        ok
    }

    /// A model whose labels differ makes old tracks meaningless: end them, start over.
    /// False when the sink has gone away.
    pub(super) fn reset_on_new_labels(
        &mut self,
        engine: &Engine,
        live: &LiveSettings,
        at: Instant,
    ) -> bool {
        let labels = &engine.model().labels;
        match &self.labels {
            Some(old) if old == labels => true,
            None => {
                self.labels = Some(labels.clone());
                true
            }
            Some(_) => {
                tracing::info!("model labels changed: tracks start over");
                self.labels = Some(labels.clone());
                let mut ok = true;
                for src in self.sources.values_mut() {
                    let ends = src.scene.finish();
                    let name = src.name(live).to_string();
                    let stats = src.info.stats.clone();
                    ok &= Self::send_scene(&self.messages, ends, engine, live, (&name, &stats), at);
                }
                ok
            }
        }
    }

    pub(super) fn publish_scene(
        &self,
        messages: Vec<SceneMessage>,
        engine: &Engine,
        live: &LiveSettings,
        to: Origin<'_>,
        received: Instant,
    ) -> bool {
        Self::send_scene(&self.messages, messages, engine, live, to, received)
    }

    /// Scene messages go out only in `events`/`both` mode, on their own outputs.
    pub(super) fn send_scene(
        sink: &Sender<Envelope>,
        messages: Vec<SceneMessage>,
        engine: &Engine,
        live: &LiveSettings,
        (source, stats): Origin<'_>,
        received: Instant,
    ) -> bool {
        if !live.output_mode.events() {
            return true;
        }
        let now = crate::message::now_iso();
        for mut m in messages {
            m.stamp(source, &now);
            let body = match m.to_json() {
                Ok(b) => b.into_bytes(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialize scene message");
                    continue;
                }
            };
            let mut properties = m.properties;
            properties.push(("source".into(), source.to_string()));
            properties.push(("model".into(), engine.model().manifest.name.clone()));
            let out = OutMessage {
                body,
                properties,
                output: Some(m.output.to_string()),
            };
            let env = Envelope {
                out,
                received,
                source: Some(stats.clone()),
            };
            if sink.send(env).is_err() {
                return false;
            }
        }
        true
    }

    pub(super) fn message(
        &self,
        engine: &Engine,
        frame: &Frame,
        source: &str,
        detections: &[Detection],
    ) -> InferenceMessage {
        let m = &engine.model().manifest;
        InferenceMessage::new(
            source,
            FrameInfo {
                pts_ms: pts_ms(frame),
                width: frame.width,
                height: frame.height,
            },
            ModelInfo {
                name: m.name.clone(),
                version: m.version.clone(),
            },
            detections,
        )
    }

    /// Frames with nothing in them send nothing. False when the sink has gone away.
    pub(super) fn publish(
        &self,
        msg: &InferenceMessage,
        engine: &Engine,
        (source, stats): Origin<'_>,
        received: Instant,
    ) -> bool {
        if msg.inferences.is_empty() {
            return true;
        }
        let body = match serde_json::to_vec(msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize message");
                return true;
            }
        };
        let m = &engine.model().manifest;
        let out = OutMessage {
            body,
            properties: vec![
                ("source".into(), source.to_string()),
                ("model".into(), m.name.clone()),
                ("modelVersion".into(), m.version.clone()),
            ],
            output: None,
        };
        let env = Envelope {
            out,
            received,
            source: Some(stats.clone()),
        };
        self.messages.send(env).is_ok()
    }
}
