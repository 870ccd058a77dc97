//! Per track, per zone membership with inertia: the bottom centre must be in (or out of) a
//! zone for `minFrames` frames in a row before membership flips, so a foot jittering on a
//! zone's edge does not flicker in and out.

use std::collections::{BTreeMap, HashMap};

use super::config::ZoneConfig;
use super::geometry::{bottom_centre, point_in_polygon, Bounds};
use crate::engine::BBox;

#[derive(Debug, Clone, PartialEq)]
pub enum ZoneChange {
    Entered(String),
    Left(String),
    /// Stayed longer than the zone's `loiterSecs`; once per stay.
    Loitering {
        zone: String,
        secs: f32,
    },
}

#[derive(Debug, Clone, Default)]
struct Membership {
    /// The inertia-confirmed state.
    inside: bool,
    /// Frames in a row whose raw state differs from `inside`.
    streak: u32,
    /// Stream time of the first frame of the current streak.
    streak_start_ms: u64,
    /// When the current stay began (the first raw-inside frame that led to entry).
    since_ms: u64,
    loitered: bool,
}

#[derive(Debug, Default)]
struct TrackZones {
    label: String,
    zones: BTreeMap<String, Membership>,
}

#[derive(Debug, Default)]
pub struct Zones {
    config: BTreeMap<String, ZoneConfig>,
    /// Each zone's bounding box: most feet are outside most zones, and this says so in
    /// four comparisons instead of a walk around every edge.
    bounds: BTreeMap<String, Bounds>,
    tracks: HashMap<String, TrackZones>,
}

impl Zones {
    pub fn new(config: &BTreeMap<String, ZoneConfig>) -> Self {
        let mut z = Zones::default();
        z.set_config(config);
        z
    }

    /// New zones without events: memberships in removed zones are dropped silently, those
    /// in kept zones (same name) carry on and change only through inertia, as any move would.
    pub fn set_config(&mut self, config: &BTreeMap<String, ZoneConfig>) {
        self.config = config.clone();
        self.bounds = config
            .iter()
            .map(|(n, z)| (n.clone(), Bounds::of(&z.polygon)))
            .collect();
        for t in self.tracks.values_mut() {
            t.zones.retain(|name, _| config.contains_key(name));
        }
    }

    /// One observation of a track; the changes it causes, in zone-name order.
    pub fn update(
        &mut self,
        track: &str,
        label: &str,
        bbox: &BBox,
        pts_ms: u64,
    ) -> Vec<ZoneChange> {
        let foot = bottom_centre(bbox);
        // Look up before inserting: this runs per track per frame, keys rarely new.
        if !self.tracks.contains_key(track) {
            self.tracks.insert(track.to_string(), TrackZones::default());
        }
        let Some(t) = self.tracks.get_mut(track) else {
            return Vec::new();
        };
        if t.label != label {
            t.label = label.to_string();
        }
        let mut out = Vec::new();
        for (name, z) in &self.config {
            let raw = (z.classes.is_empty() || z.classes.iter().any(|c| c == label))
                && self.bounds.get(name).is_some_and(|b| b.contains(foot))
                && point_in_polygon(foot, &z.polygon);
            if !raw && !t.zones.contains_key(name) {
                continue; // never-entered zones need no state
            }
            if !t.zones.contains_key(name) {
                t.zones.insert(name.clone(), Membership::default());
            }
            let Some(m) = t.zones.get_mut(name) else {
                continue;
            };
            if raw == m.inside {
                m.streak = 0;
            } else {
                if m.streak == 0 {
                    m.streak_start_ms = pts_ms;
                }
                m.streak += 1;
                if m.streak >= z.min_frames.max(1) {
                    m.inside = raw;
                    m.streak = 0;
                    if raw {
                        m.since_ms = m.streak_start_ms;
                        m.loitered = false;
                        out.push(ZoneChange::Entered(name.clone()));
                    } else {
                        out.push(ZoneChange::Left(name.clone()));
                    }
                }
            }
            if m.inside && z.loiter_secs > 0.0 && !m.loitered {
                let stayed = pts_ms.saturating_sub(m.since_ms) as f64 / 1000.0;
                if stayed > z.loiter_secs as f64 {
                    m.loitered = true;
                    out.push(ZoneChange::Loitering {
                        zone: name.clone(),
                        secs: stayed as f32,
                    });
                }
            }
        }
        t.zones.retain(|_, m| m.inside || m.streak > 0);
        out
    }

    /// The zones the track is in now (inertia-confirmed), in name order.
    pub fn current(&self, track: &str) -> Vec<String> {
        self.tracks
            .get(track)
            .map(|t| {
                t.zones
                    .iter()
                    .filter(|(_, m)| m.inside)
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn remove(&mut self, track: &str) {
        self.tracks.remove(track);
    }

    pub fn clear(&mut self) {
        self.tracks.clear();
    }

    /// Objects present per zone and class. Zones with a class filter list every filtered
    /// class (0 when absent); all configured zones appear, empty or not.
    pub fn present(&self) -> BTreeMap<String, BTreeMap<String, u32>> {
        let mut out: BTreeMap<String, BTreeMap<String, u32>> = self
            .config
            .iter()
            .map(|(n, z)| {
                (
                    n.clone(),
                    z.classes.iter().map(|c| (c.clone(), 0)).collect(),
                )
            })
            .collect();
        for t in self.tracks.values() {
            for (zone, m) in &t.zones {
                if let (true, Some(per_class)) = (m.inside, out.get_mut(zone)) {
                    match per_class.get_mut(&t.label) {
                        Some(n) => *n += 1,
                        None => {
                            per_class.insert(t.label.clone(), 1);
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(min_frames: u32, loiter_secs: f32, classes: &[&str]) -> BTreeMap<String, ZoneConfig> {
        let z = ZoneConfig {
            polygon: vec![[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]],
            classes: classes.iter().map(|c| c.to_string()).collect(),
            min_frames,
            loiter_secs,
        };
        BTreeMap::from([("z".to_string(), z)])
    }

    use crate::scene::testutil::foot;

    const IN: BBox = BBox {
        l: 0.45,
        t: 0.3,
        w: 0.1,
        h: 0.2,
    }; // foot (0.5, 0.5)
    const OUT: BBox = BBox {
        l: 0.05,
        t: 0.3,
        w: 0.1,
        h: 0.2,
    }; // foot (0.1, 0.5)

    #[test]
    fn enter_after_min_frames_then_leave_after_min_frames() {
        let mut z = Zones::new(&zone(3, 0.0, &[]));
        assert!(z.update("a", "person", &IN, 0).is_empty());
        assert!(z.update("a", "person", &IN, 100).is_empty());
        assert!(z.current("a").is_empty());
        assert_eq!(
            z.update("a", "person", &IN, 200),
            vec![ZoneChange::Entered("z".into())]
        );
        assert_eq!(z.current("a"), vec!["z"]);
        assert!(z.update("a", "person", &OUT, 300).is_empty());
        assert!(z.update("a", "person", &OUT, 400).is_empty());
        assert_eq!(
            z.update("a", "person", &OUT, 500),
            vec![ZoneChange::Left("z".into())]
        );
        assert!(z.current("a").is_empty());
    }

    #[test]
    fn flicker_shorter_than_min_frames_is_ignored() {
        let mut z = Zones::new(&zone(3, 0.0, &[]));
        let frames = [OUT, IN, IN, OUT, IN, OUT, OUT, IN, OUT];
        for (i, b) in frames.iter().enumerate() {
            assert!(
                z.update("a", "person", b, i as u64 * 100).is_empty(),
                "frame {i}"
            );
        }
        // min_frames 1: every change counts.
        let mut z = Zones::new(&zone(1, 0.0, &[]));
        assert_eq!(z.update("a", "person", &IN, 0).len(), 1);
        assert_eq!(
            z.update("a", "person", &OUT, 100),
            vec![ZoneChange::Left("z".into())]
        );
    }

    #[test]
    fn edge_point_counts_as_inside() {
        let mut z = Zones::new(&zone(1, 0.0, &[]));
        assert_eq!(z.update("a", "person", &foot(0.4, 0.5), 0).len(), 1);
        assert_eq!(z.current("a"), vec!["z"]);
    }

    #[test]
    fn class_filter() {
        let mut z = Zones::new(&zone(1, 0.0, &["car"]));
        assert!(z.update("p", "person", &IN, 0).is_empty());
        assert_eq!(z.update("c", "car", &IN, 0).len(), 1);
        let present = z.present();
        assert_eq!(present["z"], BTreeMap::from([("car".to_string(), 1)]));
    }

    #[test]
    fn loitering_once_per_stay_counted_from_first_inside_frame() {
        let mut z = Zones::new(&zone(3, 2.0, &[]));
        let mut events = Vec::new();
        for i in 0..40u64 {
            for c in z.update("a", "person", &IN, i * 100) {
                events.push((i, c));
            }
        }
        // Entered at frame 2 (3 frames from t=0); loitering once t - 0 > 2 s, at frame 21.
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], (2, ZoneChange::Entered("z".into())));
        assert!(matches!(&events[1], (21, ZoneChange::Loitering { zone, .. }) if zone == "z"));
        // Leave and come back: loitering can fire again.
        for i in 40..43u64 {
            z.update("a", "person", &OUT, i * 100);
        }
        let again: Vec<_> = (43..80u64)
            .flat_map(|i| z.update("a", "person", &IN, i * 100))
            .collect();
        assert_eq!(again.len(), 2, "{again:?}");
    }

    #[test]
    fn removed_zone_drops_silently_and_present_counts() {
        let mut cfg = zone(1, 0.0, &[]);
        let mut z = Zones::new(&cfg);
        z.update("a", "person", &IN, 0);
        z.update("b", "car", &IN, 0);
        z.update("c", "car", &OUT, 0);
        assert_eq!(
            z.present()["z"],
            BTreeMap::from([("person".to_string(), 1), ("car".to_string(), 1)])
        );
        cfg.insert("y".into(), cfg["z"].clone());
        z.set_config(&cfg);
        // The kept zone keeps its members without a new event; the added one enters by rule.
        assert_eq!(
            z.update("a", "person", &IN, 100),
            vec![ZoneChange::Entered("y".into())]
        );
        cfg.remove("z");
        z.set_config(&cfg);
        assert_eq!(z.current("b"), Vec::<String>::new());
        assert!(z
            .update("b", "car", &OUT, 200)
            .iter()
            .all(|c| *c != ZoneChange::Left("z".into())));
        assert!(!z.present().contains_key("z"));
        z.remove("a");
        assert!(z.present()["y"].is_empty());
    }
}
