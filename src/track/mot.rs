//! MOTChallenge text formats, without I/O: detection lines in, result lines out.
//!
//! Detections: `frame,-1,x,y,w,h,conf[,...]`, 1-based frames, pixel boxes; extra columns are
//! ignored. Results: `frame,id,x,y,w,h,conf,-1,-1,-1` with numeric ids (MOT tools need them).

use std::collections::HashMap;

use crate::engine::{BBox, Detection};

/// The highest frame number accepted: every frame up to it is fed to the tracker, so a
/// hostile `4000000000,...` line must not turn into hours of empty updates.
pub const MAX_FRAME: u32 = 10_000_000;

/// Label and class given to MOT detections, which carry no class.
pub const LABEL: &str = "object";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct MotError {
    pub line: usize,
    pub message: String,
}

/// Parses one detection line (`line_no` is 1-based, for the error). `Ok(None)` for blank lines
/// and `#` comments.
pub fn parse_line(line_no: usize, text: &str) -> Result<Option<(u32, Detection)>, MotError> {
    let err = |message: String| MotError {
        line: line_no,
        message,
    };
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let cols: Vec<&str> = text.split(',').map(str::trim).collect();
    if cols.len() < 7 {
        return Err(err(format!(
            "expected at least 7 comma-separated columns (frame,-1,x,y,w,h,conf), found {}",
            cols.len()
        )));
    }
    let frame: u32 = cols[0]
        .parse()
        .map_err(|_| err(format!("frame '{}' is not a whole number", cols[0])))?;
    if frame == 0 || frame > MAX_FRAME {
        return Err(err(format!("frame {frame} is outside 1..={MAX_FRAME}")));
    }
    let mut v = [0f32; 5];
    for (i, name) in ["x", "y", "w", "h", "conf"].iter().enumerate() {
        let c = cols[2 + i];
        v[i] = c
            .parse::<f32>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| err(format!("{name} '{c}' is not a finite number")))?;
    }
    if v[2] <= 0.0 || v[3] <= 0.0 {
        return Err(err(format!("box size {}x{} is not positive", v[2], v[3])));
    }
    let det = Detection {
        label: LABEL.into(),
        class_id: 0,
        confidence: v[4],
        bbox: BBox {
            l: v[0],
            t: v[1],
            w: v[2],
            h: v[3],
        },
    };
    Ok(Some((frame, det)))
}

/// Groups parsed detections by frame: index `f - 1` holds frame `f`, every frame up to the last
/// one present (frames without lines are empty), in file order within a frame.
pub fn by_frame(dets: Vec<(u32, Detection)>) -> Vec<Vec<Detection>> {
    let last = dets.iter().map(|(f, _)| *f).max().unwrap_or(0) as usize;
    let mut frames = vec![Vec::new(); last];
    for (f, d) in dets {
        frames[f as usize - 1].push(d);
    }
    frames
}

/// Maps string track ids to 1, 2, 3... in order of first appearance.
#[derive(Debug, Default)]
pub struct NumericIds(HashMap<String, u64>);

impl NumericIds {
    pub fn get(&mut self, id: &str) -> u64 {
        let next = self.0.len() as u64 + 1;
        *self.0.entry(id.to_string()).or_insert(next)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One result line (no newline).
pub fn result_line(frame: u32, id: u64, b: &BBox, conf: f32) -> String {
    format!(
        "{frame},{id},{:.2},{:.2},{:.2},{:.2},{:.4},-1,-1,-1",
        b.l, b.t, b.w, b.h, conf
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mot_detection_lines() {
        let (f, d) = parse_line(1, "3,-1,10.5,20,30,60,0.87,-1,-1,-1")
            .unwrap()
            .unwrap();
        assert_eq!(f, 3);
        assert_eq!(
            d.bbox,
            BBox {
                l: 10.5,
                t: 20.0,
                w: 30.0,
                h: 60.0
            }
        );
        assert_eq!((d.confidence, d.label.as_str()), (0.87, "object"));
        // 7 columns are enough; DPM-style negative scores are kept.
        assert!(parse_line(1, "1,-1,1,2,3,4,-0.5").unwrap().is_some());
        assert_eq!(parse_line(1, "  ").unwrap(), None);
        assert_eq!(parse_line(1, "# comment").unwrap(), None);
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        for (text, want) in [
            ("1,-1,2,3", "expected at least 7"),
            ("x,-1,1,2,3,4,0.9", "frame 'x' is not a whole number"),
            ("0,-1,1,2,3,4,0.9", "frame 0 is outside"),
            ("99999999999,-1,1,2,3,4,0.9", "not a whole number"),
            ("20000000,-1,1,2,3,4,0.9", "outside 1..=10000000"),
            ("1,-1,1,2,nan,4,0.9", "w 'nan' is not a finite number"),
            ("1,-1,1,2,3,4,", "conf '' is not a finite number"),
            ("1,-1,1,2,0,4,0.9", "box size 0x4 is not positive"),
        ] {
            let e = parse_line(7, text).unwrap_err();
            assert_eq!(e.line, 7);
            assert!(e.to_string().starts_with("line 7: "), "{e}");
            assert!(e.message.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn groups_by_frame_with_empty_frames() {
        let d = |f| {
            parse_line(1, &format!("{f},-1,1,2,3,4,0.9"))
                .unwrap()
                .unwrap()
        };
        let frames = by_frame(vec![d(3), d(1), d(3)]);
        assert_eq!(frames.iter().map(Vec::len).collect::<Vec<_>>(), [1, 0, 2]);
        assert!(by_frame(Vec::new()).is_empty());
    }

    #[test]
    fn numeric_ids_and_result_lines() {
        let mut ids = NumericIds::default();
        assert_eq!((ids.get("9-4"), ids.get("9-2"), ids.get("9-4")), (1, 2, 1));
        let b = BBox {
            l: 1.0,
            t: 2.5,
            w: 3.0,
            h: 4.0,
        };
        assert_eq!(
            result_line(5, 2, &b, 0.9),
            "5,2,1.00,2.50,3.00,4.00,0.9000,-1,-1,-1"
        );
    }
}
