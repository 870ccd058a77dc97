//! Directed line crossings on each track's bottom-centre trajectory, with cumulative in/out
//! counters per line and class.

use std::collections::{BTreeMap, HashMap};

use super::config::LineConfig;
use super::geometry::{bottom_centre, crossing, side, Direction, Point};
use crate::defaults;
use crate::engine::BBox;

#[derive(Debug, Clone, PartialEq)]
pub struct LineCrossing {
    pub line: String,
    pub direction: Direction,
}

/// In and out totals for one class on one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InOut {
    pub r#in: u64,
    pub out: u64,
}

#[derive(Debug, Default)]
pub struct Lines {
    config: BTreeMap<String, LineConfig>,
    /// Per track, per line: the last foot position that was clearly off the line (by the
    /// margin, see `update`). A step into the margin waits for the next step clearly off
    /// it, so touching the line never counts, crossing via a point on it counts once, and a
    /// person standing on the line (detector jitter) does not count in, out, in, out.
    last: HashMap<String, BTreeMap<String, Point>>,
    counts: BTreeMap<String, BTreeMap<String, InOut>>,
}

impl Lines {
    pub fn new(config: &BTreeMap<String, LineConfig>) -> Self {
        let mut l = Lines::default();
        l.set_config(config);
        l
    }

    /// Removed lines lose their counters; a moved line (same name, new ends) keeps its
    /// counters but forgets where tracks were, so the move itself crosses nothing.
    pub fn set_config(&mut self, config: &BTreeMap<String, LineConfig>) {
        let moved: Vec<&String> = config
            .iter()
            .filter(|(n, l)| {
                self.config
                    .get(*n)
                    .is_some_and(|o| o.from != l.from || o.to != l.to)
            })
            .map(|(n, _)| n)
            .collect();
        for per_line in self.last.values_mut() {
            per_line.retain(|n, _| config.contains_key(n) && !moved.contains(&n));
        }
        self.counts.retain(|n, _| config.contains_key(n));
        for n in config.keys() {
            self.counts.entry(n.clone()).or_default();
        }
        self.config = config.clone();
    }

    /// One observation of a track: the lines it crossed since its previous observation.
    /// The foot must leave the line by `LINE_MARGIN` of the box's height (a scale that
    /// follows the object's size on the image), at most `LINE_MARGIN_MAX` of the frame so a
    /// line near the frame's edge still has room past it, to be on a side.
    pub fn update(&mut self, track: &str, label: &str, bbox: &BBox) -> Vec<LineCrossing> {
        let foot = bottom_centre(bbox);
        let margin =
            (defaults::LINE_MARGIN * bbox.h.max(0.0)).min(defaults::LINE_MARGIN_MAX) as f64;
        if !self.last.contains_key(track) {
            self.last.insert(track.to_string(), BTreeMap::new());
        }
        let Some(last) = self.last.get_mut(track) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, l) in &self.config {
            let len = distance(l.from, l.to).max(1e-9);
            let s = side(l.from, l.to, foot);
            if s == 0.0 || s.abs() / len < margin {
                continue;
            }
            let prev = match last.get_mut(name) {
                Some(p) => Some(std::mem::replace(p, foot)),
                None => last.insert(name.clone(), foot),
            };
            if let Some(prev) = prev {
                let Some(direction) = crossing(l.from, l.to, prev, foot) else {
                    continue;
                };
                if !(l.classes.is_empty() || l.classes.iter().any(|c| c == label)) {
                    continue;
                }
                let c = self
                    .counts
                    .entry(name.clone())
                    .or_default()
                    .entry(label.to_string())
                    .or_default();
                match direction {
                    Direction::In => c.r#in += 1,
                    Direction::Out => c.out += 1,
                }
                out.push(LineCrossing {
                    line: name.clone(),
                    direction,
                });
            }
        }
        out
    }

    pub fn remove(&mut self, track: &str) {
        self.last.remove(track);
    }

    /// Forget every track and zero every counter.
    pub fn clear(&mut self) {
        self.last.clear();
        for c in self.counts.values_mut() {
            c.clear();
        }
    }

    /// Cumulative totals per line and class; every configured line appears. Lines with a
    /// class filter list each filtered class, 0 until crossed.
    pub fn totals(&self) -> BTreeMap<String, BTreeMap<String, InOut>> {
        let mut out = self.counts.clone();
        for (name, l) in &self.config {
            let per_class = out.entry(name.clone()).or_default();
            for c in &l.classes {
                per_class.entry(c.clone()).or_default();
            }
        }
        out
    }
}

fn distance(a: Point, b: Point) -> f64 {
    let (dx, dy) = ((b[0] - a[0]) as f64, (b[1] - a[1]) as f64);
    (dx * dx + dy * dy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(classes: &[&str]) -> BTreeMap<String, LineConfig> {
        let l = LineConfig {
            from: [0.2, 0.5],
            to: [0.8, 0.5],
            classes: classes.iter().map(|c| c.to_string()).collect(),
        };
        BTreeMap::from([("gate".to_string(), l)])
    }

    use crate::scene::testutil::foot;

    fn walk(l: &mut Lines, track: &str, label: &str, ys: &[f32]) -> Vec<Direction> {
        ys.iter()
            .flat_map(|y| l.update(track, label, &foot(0.5, *y)))
            .map(|c| c.direction)
            .collect()
    }

    #[test]
    fn down_is_in_up_is_out_and_counted_per_class() {
        let mut l = Lines::new(&lines(&[]));
        assert_eq!(
            walk(&mut l, "a", "person", &[0.3, 0.4, 0.6, 0.7]),
            vec![Direction::In]
        );
        assert_eq!(walk(&mut l, "a", "person", &[0.4]), vec![Direction::Out]);
        assert_eq!(walk(&mut l, "b", "car", &[0.6, 0.45]), vec![Direction::Out]);
        let t = l.totals();
        assert_eq!(t["gate"]["person"], InOut { r#in: 1, out: 1 });
        assert_eq!(t["gate"]["car"], InOut { r#in: 0, out: 1 });
    }

    #[test]
    fn a_point_exactly_on_the_line_counts_once() {
        let mut l = Lines::new(&lines(&[]));
        // Onto the line, stay, then off on the far side: one crossing.
        assert_eq!(
            walk(&mut l, "a", "person", &[0.4, 0.5, 0.5, 0.6]),
            vec![Direction::In]
        );
        // Onto the line and back: none.
        assert!(walk(&mut l, "a", "person", &[0.5, 0.7]).is_empty());
        assert!(walk(&mut l, "b", "person", &[0.4, 0.5, 0.4]).is_empty());
    }

    #[test]
    fn standing_on_the_line_does_not_count_in_out_in_out() {
        // Box height 0.25: the margin is 0.0375 either side of y = 0.5. Detector jitter of
        // a person standing on the line (feet within +-0.03) crosses nothing.
        let mut l = Lines::new(&lines(&[]));
        let jitter = [0.4, 0.47, 0.53, 0.48, 0.52, 0.47, 0.53, 0.49];
        assert!(walk(&mut l, "a", "person", &jitter).is_empty());
        // Then walking on down crosses once; back into the margin and out again: no more.
        assert_eq!(
            walk(&mut l, "a", "person", &[0.56, 0.52, 0.58]),
            vec![Direction::In]
        );
        assert_eq!(l.totals()["gate"]["person"], InOut { r#in: 1, out: 0 });
    }

    #[test]
    fn a_big_box_still_crosses_a_line_near_the_frame_edge() {
        // Line at y = 0.95; a box 0.6 high: 0.15 of it (0.09) would need y >= 1.04, off the
        // frame. The margin is capped at 0.03, so y = 0.99 counts.
        let mut l = Lines::new(&BTreeMap::from([(
            "exit".to_string(),
            LineConfig {
                from: [0.0, 0.95],
                to: [1.0, 0.95],
                classes: vec![],
            },
        )]));
        let at = |y: f32| BBox {
            l: 0.4,
            t: y - 0.6,
            w: 0.2,
            h: 0.6,
        };
        assert!(l.update("a", "person", &at(0.85)).is_empty());
        let c = l.update("a", "person", &at(0.99));
        assert_eq!(c.len(), 1, "{c:?}");
    }

    #[test]
    fn first_observation_and_beyond_the_ends_do_not_count() {
        let mut l = Lines::new(&lines(&[]));
        assert!(walk(&mut l, "a", "person", &[0.6]).is_empty());
        // Crossing the line's extension, right of its end.
        let far: Vec<_> = [0.4, 0.6]
            .iter()
            .flat_map(|y| l.update("b", "person", &foot(0.9, *y)))
            .collect();
        assert!(far.is_empty());
    }

    #[test]
    fn class_filter_lists_filtered_classes() {
        let mut l = Lines::new(&lines(&["car"]));
        assert!(walk(&mut l, "a", "person", &[0.4, 0.6]).is_empty());
        assert_eq!(walk(&mut l, "b", "car", &[0.4, 0.6]), vec![Direction::In]);
        assert_eq!(
            l.totals()["gate"],
            BTreeMap::from([("car".to_string(), InOut { r#in: 1, out: 0 })])
        );
    }

    #[test]
    fn moving_a_line_crosses_nothing_and_removing_drops_counters() {
        let mut cfg = lines(&[]);
        let mut l = Lines::new(&cfg);
        walk(&mut l, "a", "person", &[0.4, 0.6]);
        // Move the line below the track: its next step (still below the old line) is no crossing.
        cfg.get_mut("gate").unwrap().from = [0.2, 0.7];
        cfg.get_mut("gate").unwrap().to = [0.8, 0.7];
        l.set_config(&cfg);
        assert!(walk(&mut l, "a", "person", &[0.61]).is_empty());
        assert_eq!(walk(&mut l, "a", "person", &[0.8]), vec![Direction::In]);
        assert_eq!(l.totals()["gate"]["person"].r#in, 2);
        l.set_config(&BTreeMap::new());
        assert!(l.totals().is_empty());
        l.set_config(&cfg);
        assert!(l.totals()["gate"].is_empty());
        l.clear();
        assert!(walk(&mut l, "a", "person", &[0.9]).is_empty());
    }
}
