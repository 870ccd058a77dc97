//! What ingest hands downstream: frames already scaled to a [`ScaleTarget`], and the bounded
//! queue they travel through, with its policy (live: newest wins; files: wait, lose nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};

use crate::model::{ColorOrder, InputSpec, Resize};

/// What GStreamer scales and converts frames to. Owned by ingest; the engine reads the same
/// type to know where the picture sits inside the input ([`Geometry::new`]). The pipeline swaps
/// it live when a model with another input loads.
/// Where the original frame sits inside the model input (letterbox padding, in input pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub input_w: f32,
    pub input_h: f32,
    pub content_x: f32,
    pub content_y: f32,
    pub content_w: f32,
    pub content_h: f32,
}

impl Geometry {
    /// Where a `frame_w x frame_h` frame lands when scaled to `target`.
    pub fn new(target: &ScaleTarget, frame_w: u32, frame_h: u32) -> Geometry {
        let (iw, ih) = (target.width as f32, target.height as f32);
        if !target.letterbox {
            return Geometry {
                input_w: iw,
                input_h: ih,
                content_x: 0.0,
                content_y: 0.0,
                content_w: iw,
                content_h: ih,
            };
        }
        let (cw, ch) = letterbox_size(target.width, target.height, frame_w, frame_h);
        Geometry {
            input_w: iw,
            input_h: ih,
            content_x: ((target.width - cw) / 2) as f32,
            content_y: ((target.height - ch) / 2) as f32,
            content_w: cw as f32,
            content_h: ch as f32,
        }
    }

    /// Maps a box normalized to the model input (x1,y1,x2,y2) to the frame, normalized and clamped.
    pub fn to_frame(&self, b: [f32; 4]) -> [f32; 4] {
        let fx = |x: f32| ((x * self.input_w - self.content_x) / self.content_w).clamp(0.0, 1.0);
        let fy = |y: f32| ((y * self.input_h - self.content_y) / self.content_h).clamp(0.0, 1.0);
        [fx(b[0]), fy(b[1]), fx(b[2]), fy(b[3])]
    }
}

/// The scaled content size inside a letterboxed input (aspect kept, even-rounded like videoscale).
pub fn letterbox_size(in_w: u32, in_h: u32, frame_w: u32, frame_h: u32) -> (u32, u32) {
    let scale = (in_w as f64 / frame_w.max(1) as f64).min(in_h as f64 / frame_h.max(1) as f64);
    let w = ((frame_w as f64 * scale).round() as u32).clamp(1, in_w);
    let h = ((frame_h as f64 * scale).round() as u32).clamp(1, in_h);
    (w, h)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleTarget {
    pub width: u32,
    pub height: u32,
    /// Keep the aspect ratio and pad with black borders, instead of stretching.
    pub letterbox: bool,
    /// Channel order of the packed 8-bit pixels.
    pub order: ColorOrder,
}

impl From<&InputSpec> for ScaleTarget {
    fn from(input: &InputSpec) -> ScaleTarget {
        ScaleTarget {
            width: input.width,
            height: input.height,
            letterbox: input.resize == Resize::Letterbox,
            order: input.color,
        }
    }
}

impl ScaleTarget {
    /// Bytes of one packed frame at this size (3 bytes a pixel).
    pub fn frame_bytes(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }
}

/// One frame, scaled to the model input, with the original frame's size and timestamp.
/// `Clone` copies the pixels: only the snapshot writer and the live view do, off the hot path.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub pts_ms: Option<u64>,
    /// Original (pre-scale) size.
    pub width: u32,
    pub height: u32,
    /// Packed pixels at `geometry.input_w x input_h`, in `order`.
    pub pixels: Vec<u8>,
    pub order: ColorOrder,
    /// Where the original frame sits inside `pixels`.
    pub geometry: Geometry,
    /// When the appsink handed the frame over; frame->sink latency starts here.
    pub received: Instant,
    /// Which of the pipeline's sources it came from (stamped by the pipeline; 0 before).
    pub source: u32,
}

impl Frame {
    /// A black RGB frame of `input` pixels (stretched, no letterbox) standing for a
    /// `width x height` original, at seq 0 and pts 0 from source 0: what unit tests feed
    /// the stages after ingest.
    #[cfg(test)]
    pub(crate) fn blank(input: (u32, u32), width: u32, height: u32) -> Frame {
        let t = ScaleTarget {
            width: input.0,
            height: input.1,
            letterbox: false,
            order: ColorOrder::Rgb,
        };
        Frame {
            seq: 0,
            pts_ms: Some(0),
            width,
            height,
            pixels: vec![0; t.frame_bytes()],
            order: t.order,
            geometry: Geometry::new(&t, width, height),
            received: Instant::now(),
            source: 0,
        }
    }
}

/// How frames are delivered: the appsink settings and the queue policy follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Newest frame wins; older queued frames are dropped (and counted).
    Live,
    /// Every frame, as fast as decode allows (benchmarks, batch).
    Lossless,
    /// Every frame, paced at the file's own frame rate.
    Realtime,
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued, after evicting this many older frames (live mode only).
    Queued { dropped: u64 },
    /// `stop` was set while waiting (or the channel closed). The queue holds a receiver of
    /// its own, so a consumer that goes away is noticed through `stop`, as shutdown sets it.
    Closed,
}

/// The bounded queue between ingest and inference. `drain` is a second receiver on the same
/// channel: in live mode it evicts the oldest queued frame so the newest always gets in.
#[derive(Clone)]
pub struct FrameQueue {
    tx: Sender<Frame>,
    drain: Receiver<Frame>,
}

impl FrameQueue {
    /// A queue of `capacity` frames (at least 1) and the receiver the consumer reads.
    pub fn bounded(capacity: usize) -> (FrameQueue, Receiver<Frame>) {
        let (tx, rx) = bounded(capacity.max(1));
        (
            FrameQueue {
                tx,
                drain: rx.clone(),
            },
            rx,
        )
    }

    /// Pushes per `mode`: live never waits (oldest evicted), the others wait for room,
    /// checking `stop` every 100 ms so shutdown never hangs on a stalled consumer.
    pub fn push(&self, frame: Frame, mode: Mode, stop: &AtomicBool) -> Pushed {
        match mode {
            Mode::Live => self.push_newest(frame),
            Mode::Lossless | Mode::Realtime => self.push_wait(frame, stop),
        }
    }

    fn push_newest(&self, mut frame: Frame) -> Pushed {
        let mut dropped = 0;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) => return Pushed::Queued { dropped },
                Err(TrySendError::Disconnected(_)) => return Pushed::Closed,
                Err(TrySendError::Full(f)) => {
                    // The consumer may have taken one meanwhile: then nothing was evicted.
                    if self.drain.try_recv().is_ok() {
                        dropped += 1;
                    }
                    frame = f;
                }
            }
        }
    }

    fn push_wait(&self, mut frame: Frame, stop: &AtomicBool) -> Pushed {
        loop {
            match self.tx.send_timeout(frame, Duration::from_millis(100)) {
                Ok(()) => return Pushed::Queued { dropped: 0 },
                Err(SendTimeoutError::Disconnected(_)) => return Pushed::Closed,
                Err(SendTimeoutError::Timeout(f)) => {
                    if stop.load(Ordering::SeqCst) {
                        return Pushed::Closed;
                    }
                    frame = f;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            pts_ms: Some(seq * 10),
            ..Frame::blank((2, 2), 4, 4)
        }
    }

    #[test]
    fn live_keeps_the_newest_and_counts_what_it_evicts() {
        let (q, rx) = FrameQueue::bounded(2);
        let stop = AtomicBool::new(false);
        let mut dropped = 0;
        for seq in 1..=5 {
            match q.push(frame(seq), Mode::Live, &stop) {
                Pushed::Queued { dropped: d } => dropped += d,
                Pushed::Closed => panic!("closed"),
            }
        }
        assert_eq!(dropped, 3);
        let left: Vec<u64> = rx.try_iter().map(|f| f.seq).collect();
        assert_eq!(left, vec![4, 5], "the newest two survive, in order");
    }

    #[test]
    fn lossless_waits_for_room_and_loses_nothing() {
        let (q, rx) = FrameQueue::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                (1..=20)
                    .map(|s| q.push(frame(s), Mode::Lossless, &stop))
                    .collect::<Vec<_>>()
            })
        };
        let got: Vec<u64> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("frame").seq)
            .collect();
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
        let pushed = producer.join().expect("producer");
        assert!(pushed.iter().all(|p| *p == Pushed::Queued { dropped: 0 }));
    }

    #[test]
    fn a_full_waiting_queue_gives_up_when_stopped() {
        let (q, _rx) = FrameQueue::bounded(1);
        let stop = AtomicBool::new(false);
        assert_eq!(
            q.push(frame(1), Mode::Realtime, &stop),
            Pushed::Queued { dropped: 0 }
        );
        stop.store(true, Ordering::SeqCst);
        assert_eq!(q.push(frame(2), Mode::Realtime, &stop), Pushed::Closed);
    }
}
