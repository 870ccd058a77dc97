//! `maxFps` on stream time (PTS), so files run lossless at any speed and still infer the
//! asked rate of their own timeline.

/// Admits at most `max_fps` frames per second of stream time.
#[derive(Debug, Default)]
pub struct RateLimit {
    last: Option<u64>,
}

impl RateLimit {
    /// True when the frame at `pts_ms` should be inferred. A PTS that jumps backwards (an
    /// RTSP reconnect, a rebuilt or reconfigured source, a looping file) starts a new
    /// timeline: comparing it with the old one would skip every frame for as long as the
    /// old stream had run.
    pub fn admit(&mut self, pts_ms: u64, max_fps: Option<f32>) -> bool {
        let Some(fps) = max_fps.filter(|f| *f > 0.0 && f.is_finite()) else {
            self.last = Some(pts_ms);
            return true;
        };
        if let Some(prev) = self.last {
            // Half a millisecond of slack: 30 fps PTS are rounded to whole milliseconds.
            if pts_ms >= prev && ((pts_ms - prev) as f32) < 1000.0 / fps - 0.5 {
                return false;
            }
        }
        self.last = Some(pts_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(r: &mut RateLimit, pts: impl IntoIterator<Item = u64>, fps: f32) -> usize {
        pts.into_iter().filter(|p| r.admit(*p, Some(fps))).count()
    }

    #[test]
    fn thirty_fps_at_max_five_keeps_one_in_six() {
        let mut r = RateLimit::default();
        let n = admitted(&mut r, (0..60).map(|i| i * 1000 / 30), 5.0);
        assert_eq!(n, 10);
    }

    #[test]
    fn a_restarted_stream_is_inferred_at_once() {
        let mut r = RateLimit::default();
        // An hour of stream, then the camera reconnects and PTS starts again near 0.
        admitted(&mut r, (0..100).map(|i| 3_600_000 + i * 100), 5.0);
        let after = admitted(&mut r, (0..30).map(|i| i * 100), 5.0);
        assert_eq!(after, 15, "10 fps at max 5 after the restart");
    }

    #[test]
    fn no_limit_admits_all() {
        let mut r = RateLimit::default();
        assert!((0..10).all(|i| r.admit(i, None)));
        assert!(r.admit(5, Some(f32::NAN)));
    }
}
