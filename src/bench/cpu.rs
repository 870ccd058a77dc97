//! Where the pipeline's CPU goes (issue 12: "for any goal missed, where the time goes").
//!
//! The bench snapshots every thread's CPU time (`/proc/self/task/*/stat`) when the layout
//! has settled and again after the measured frames, and groups the difference by what each
//! thread does, known from its name:
//! - inference: the pool's workers (`infer-N`: preprocess, the backend call, box decode)
//!   and the backend's own intra-op threads, which inherit the name of the thread that
//!   loaded the session (the process's, here);
//! - decode: GStreamer's streaming threads (`element:pad`, `pool-*`): demux, decode,
//!   scale and colour conversion;
//! - edgelens: every other thread (dispatcher, reorder, publish, ingest appsinks, tracker).
//!
//! Linux gives a new thread its creator's name, so this holds because the bench builds its
//! engine on the main thread; a session built elsewhere (the tuner's relayouts, on the
//! dispatcher) would count as edgelens. The bench measures a settled, fixed layout.
//!
//! Compared with the limit's own per-frame costs, measured alone, this says how much each
//! part costs more when everything runs at once.

use serde::Serialize;

/// One thread's CPU time at a moment: id, name, user+system clock ticks.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ThreadTime {
    pub tid: u32,
    pub name: String,
    pub ticks: u64,
}

/// Every thread of this process, now. Empty where /proc cannot be read.
pub(super) fn snapshot() -> Vec<ThreadTime> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            parse_stat(tid, &stat)
        })
        .collect()
}

/// `pid (comm) state ... utime stime ...`: the name may hold spaces and parentheses, so
/// the fields are counted from the last `)`.
fn parse_stat(tid: u32, stat: &str) -> Option<ThreadTime> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some(ThreadTime {
        tid,
        name,
        ticks: utime + stime,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Group {
    Inference,
    Decode,
    Edgelens,
}

fn group(t: &ThreadTime, main: &ThreadTime) -> Group {
    if t.name.starts_with("infer-") || (t.name == main.name && t.tid != main.tid) {
        Group::Inference
    } else if t.name.contains(':') || t.name.starts_with("pool-") {
        Group::Decode
    } else {
        Group::Edgelens
    }
}

/// CPU milliseconds per frame of each group over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuSplit {
    pub inference_ms: f64,
    pub decode_ms: f64,
    pub edgelens_ms: f64,
    pub total_ms: f64,
}

/// The CPU each group spent between two snapshots, per frame. Threads born in the window
/// count from zero; threads that ended in it are lost (none do in a steady pipeline).
/// `main` is the process's main thread (tid = pid), whose name the backend's threads share.
pub(super) fn split(
    before: &[ThreadTime],
    after: &[ThreadTime],
    frames: u64,
    ticks_per_s: u64,
) -> CpuSplit {
    let pid = std::process::id();
    let main = after
        .iter()
        .find(|t| t.tid == pid)
        .cloned()
        .unwrap_or(ThreadTime {
            tid: pid,
            name: String::new(),
            ticks: 0,
        });
    split_with_main(before, after, frames, ticks_per_s, &main)
}

fn split_with_main(
    before: &[ThreadTime],
    after: &[ThreadTime],
    frames: u64,
    ticks_per_s: u64,
    main: &ThreadTime,
) -> CpuSplit {
    let mut ticks = [0u64; 3];
    for t in after {
        let was = before
            .iter()
            .find(|b| b.tid == t.tid)
            .map_or(0, |b| b.ticks);
        ticks[group(t, main) as usize] += t.ticks.saturating_sub(was);
    }
    let per_frame = |n: u64| {
        let ms = n as f64 * 1e3 / ticks_per_s.max(1) as f64 / frames.max(1) as f64;
        (ms * 1e3).round() / 1e3
    };
    let s = CpuSplit {
        inference_ms: per_frame(ticks[Group::Inference as usize]),
        decode_ms: per_frame(ticks[Group::Decode as usize]),
        edgelens_ms: per_frame(ticks[Group::Edgelens as usize]),
        total_ms: 0.0,
    };
    CpuSplit {
        total_ms: ((s.inference_ms + s.decode_ms + s.edgelens_ms) * 1e3).round() / 1e3,
        ..s
    }
}

/// Clock ticks per second (`_SC_CLK_TCK`), 100 where unknown.
pub(super) fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, name: &str, ticks: u64) -> ThreadTime {
        ThreadTime {
            tid,
            name: name.into(),
            ticks,
        }
    }

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name_parses() {
        let line = "4242 (odd (name) x) R 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 3 0";
        let got = parse_stat(4242, line).expect("parses");
        assert_eq!(got.name, "odd (name) x");
        assert_eq!(got.ticks, 150);
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_stat(1, "1 (x) R 1 2"), None);
    }

    #[test]
    fn threads_are_grouped_by_name_and_only_the_window_counts() {
        let main = t(100, "edgelens", 50);
        let before = vec![
            main.clone(),
            t(101, "infer-0", 1000),
            t(102, "infer-1", 900),
            t(103, "multiqueue0:src", 300),
            t(104, "mux", 10),
        ];
        let after = vec![
            t(100, "edgelens", 52),         // the main thread: edgelens, not inference
            t(101, "infer-0", 1600),        // +600
            t(102, "infer-1", 1500),        // +600
            t(103, "multiqueue0:src", 380), // +80
            t(104, "mux", 16),              // +6
            t(105, "edgelens", 40),         // an ORT intra-op thread born in the window: +40
            t(106, "pool-edgelens", 4),     // GStreamer's task pool: decode
        ];
        // 100 ticks per second and 100 frames: one tick is 0.1 ms per frame.
        let s = split_with_main(&before, &after, 100, 100, &main);
        assert_eq!(s.inference_ms, 124.0);
        assert_eq!(s.decode_ms, 8.4);
        assert_eq!(s.edgelens_ms, 0.8);
        assert_eq!(s.total_ms, 133.2);
    }

    #[test]
    fn no_frames_or_no_proc_gives_zeros_not_nan() {
        let s = split(&[], &[], 0, 0);
        assert_eq!(s, CpuSplit::default());
        assert!(!snapshot().is_empty(), "this test runs on Linux with /proc");
    }
}
