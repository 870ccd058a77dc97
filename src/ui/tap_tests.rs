use super::*;
use crate::message::{FrameInfo, ModelInfo};
use crate::scene::ZoneConfig;

fn frame(source: u32) -> Frame {
    Frame {
        source,
        ..Frame::blank((8, 8), 16, 8)
    }
}

fn scene(zone: &str) -> Arc<SceneConfig> {
    let z = ZoneConfig {
        polygon: vec![[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]],
        classes: vec![],
        min_frames: 1,
        loiter_secs: 0.0,
    };
    Arc::new(SceneConfig {
        zones: [(zone.to_string(), z)].into(),
        ..SceneConfig::default()
    })
}

fn tap() -> Arc<Tap> {
    Tap::new(TapSettings {
        fps: 1000.0,
        width: 16,
        quality: 50,
        events: 10,
    })
    .unwrap()
}

fn message() -> InferenceMessage {
    InferenceMessage {
        timestamp: String::new(),
        source: "cam".into(),
        frame: FrameInfo {
            pts_ms: 0,
            width: 16,
            height: 8,
        },
        model: ModelInfo {
            name: "m".into(),
            version: "1".into(),
        },
        inferences: vec![],
    }
}

/// Two sources with their own zones: each captured picture carries the zones of the source
/// it shows; the editor keeps showing the shared set.
#[test]
fn the_picture_draws_the_shown_sources_zones_and_the_editor_the_shared_ones() {
    let tap = tap();
    let _watching = tap.viewer();
    let message = message();
    let shared = scene("shared");
    for (src, own) in [(0, scene("zoneOfA")), (1, scene("zoneOfB"))] {
        let f = frame(src);
        // The encoder thread competes for each capture: offer the frame until the test
        // takes one itself.
        let mut taken = None;
        for _ in 0..100 {
            tap.next_capture.store(0, Ordering::Relaxed);
            tap.frame(&TapFrame {
                frame: &f,
                detections: &[],
                message: &message,
                scene: &own,
                editable: &shared,
                events: &[],
                counts: None,
                backend: "ort",
                labels: &[],
            });
            taken = lock(&tap.slot).take();
            if taken.is_some() {
                break;
            }
        }
        let c = taken.expect("a capture");
        assert!(
            Arc::ptr_eq(&c.scene, &own),
            "source {src} shows its own zones"
        );
        assert!(
            Arc::ptr_eq(&tap.scene(), &shared),
            "the editor edits the shared set"
        );
    }
}

/// The counts panel follows the live counts handed in with each watched frame, not only
/// the (throttled) counts messages.
#[test]
fn live_counts_update_the_counts_panel() {
    let tap = tap();
    let message = message();
    let own = scene("door");
    let f = frame(0);
    for present in [2u32, 3] {
        let counts = SceneMessage::from_counts(&crate::scene::counts::CountsSnapshot {
            zones: [("door".to_string(), [("person".to_string(), present)].into())].into(),
            lines: Default::default(),
            pts_ms: 0,
        });
        tap.frame(&TapFrame {
            frame: &f,
            detections: &[],
            message: &message,
            scene: &own,
            editable: &own,
            events: &[],
            counts: Some(&counts),
            backend: "ort",
            labels: &[],
        });
        let shown = tap.with_events(|r| r.counts()["zone:door"]["present"].clone());
        assert_eq!(shown, present.to_string());
    }
}
