//! `bench --start`: process spawn to first published message, and the resident memory of a
//! real `edgelens run` (one source, stdout sink), measured from outside the process.
//!
//! Each run spawns this same binary as `edgelens run ... --metrics-addr off`, times the first
//! JSON line on its stdout, reads `min(messages, clip)` lines, then takes its peak RSS from
//! its own `VmHWM` and kills it. wait4's ru_maxrss is only the fallback (a child that already
//! exited): a spawned child shares this process's memory until it execs, so its ru_maxrss is
//! never below this bench process's own peak.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

/// `bench.json` → `start`: a hook section for `make bench-report` (rows + note).
#[derive(Debug, Clone, Serialize)]
pub struct StartSection {
    pub rows: Vec<StartRow>,
    pub note: String,
}

/// One cold spawn of `edgelens run`.
#[derive(Debug, Clone, Serialize)]
pub struct StartRow {
    pub model: String,
    pub backend: String,
    pub run: usize,
    /// Spawn to the first message line on stdout.
    pub first_message_ms: f64,
    /// Peak RSS (VmHWM) of the process over the whole run.
    pub peak_rss_mb: f64,
    /// Messages read before the process was stopped.
    pub messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start {bin}: {message}")]
    Spawn { bin: PathBuf, message: String },
    #[error("`edgelens run` published nothing (exit {0}); run it by hand to see why")]
    NoMessage(String),
}

/// What to spawn.
#[derive(Debug, Clone)]
pub struct StartSettings {
    pub bin: PathBuf,
    pub model: PathBuf,
    pub backend: String,
    pub video: String,
    pub threads: usize,
    /// Engine instances (0 = `auto`, the tuner's choice, as `run` does by default).
    pub instances: usize,
    /// Cold spawns (each a fresh process).
    pub runs: usize,
    /// Messages read before stopping a run (RSS is flat long before this).
    pub messages: u64,
}

pub fn measure(s: &StartSettings) -> Result<StartSection, StartError> {
    let mut rows = Vec::new();
    for run in 1..=s.runs.max(1) {
        rows.push(one(s, run)?);
    }
    let note = format!(
        "`edgelens run --source {} --model {} --backend {} --threads {} --instances {} --metrics-addr off`, \
         spawned {} times: first_message_ms = process spawn to the first JSON line on stdout \
         (page cache warm, GStreamer registry cached); peak_rss_mb = the process's VmHWM \
         after up to {} messages. `edgelens bench --start` (src/bench/start.rs).",
        s.video,
        s.model.display(),
        s.backend,
        threads_arg(s.threads),
        threads_arg(s.instances),
        rows.len(),
        s.messages
    );
    Ok(StartSection { rows, note })
}

/// `run --threads` / `--instances`: 0 is the bench's `auto`, which `run` spells out.
fn threads_arg(threads: usize) -> String {
    match threads {
        0 => "auto".into(),
        n => n.to_string(),
    }
}

fn one(s: &StartSettings, run: usize) -> Result<StartRow, StartError> {
    let t0 = Instant::now();
    let mut child = Command::new(&s.bin)
        .arg("run")
        .args(["--source", &s.video])
        .arg("--model")
        .arg(&s.model)
        .args(["--backend", &s.backend])
        .args(["--threads", &threads_arg(s.threads)])
        .args(["--instances", &threads_arg(s.instances)])
        .args(["--metrics-addr", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| StartError::Spawn {
            bin: s.bin.clone(),
            message: e.to_string(),
        })?;
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut first = None;
    let mut messages = 0u64;
    while messages < s.messages.max(1) {
        match lines.next() {
            Some(Ok(l)) if l.starts_with('{') => {
                first.get_or_insert_with(|| t0.elapsed());
                messages += 1;
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    // The child's own high-water mark, read while it lives: wait4's ru_maxrss would also
    // count this bench process, whose memory the child shared between spawn and exec.
    let hwm_kb = own_peak_kb(pid);
    let _ = child.kill();
    drop(lines);
    let (status, maxrss_kb) = reap(pid);
    let peak_kb = hwm_kb.unwrap_or(maxrss_kb);
    let Some(first) = first else {
        return Err(StartError::NoMessage(status));
    };
    Ok(StartRow {
        model: model_name(&s.model),
        backend: s.backend.clone(),
        run,
        first_message_ms: (first.as_secs_f64() * 1e4).round() / 10.0,
        peak_rss_mb: (peak_kb as f64 / 1024.0 * 10.0).round() / 10.0,
        messages,
    })
}

/// `VmHWM` (KiB) from /proc/PID/status: the peak RSS of the process's own address space.
fn own_peak_kb(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_hwm_kb(&status)
}

fn vm_hwm_kb(status: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits for the child and returns its exit status and ru_maxrss (KiB).
fn reap(pid: u32) -> (String, i64) {
    let mut status = 0;
    // SAFETY: wait4 writes only into the two out-parameters we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 {
        return ("unknown".into(), 0);
    }
    (status.to_string(), ru.ru_maxrss)
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status =
            "Name:\tedgelens\nVmPeak:\t  900000 kB\nVmHWM:\t  146123 kB\nVmRSS:\t  140000 kB\n";
        assert_eq!(vm_hwm_kb(status), Some(146123));
        assert_eq!(vm_hwm_kb("Name:\tzombie\nState:\tZ (zombie)\n"), None);
        let own = own_peak_kb(std::process::id()).expect("this process's status");
        assert!(own > 0);
    }

    #[test]
    fn a_spawned_child_s_peak_is_its_own_not_its_parent_s() {
        // Hold 64 MB here so that the parent's peak dwarfs a `sleep`'s.
        let ballast = vec![1u8; 64 << 20];
        let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let child_kb = own_peak_kb(child.id()).expect("child status");
        let _ = child.kill();
        let _ = child.wait();
        let parent_kb = own_peak_kb(std::process::id()).expect("own status");
        assert!(parent_kb >= 64 << 10, "parent: {parent_kb} kB");
        assert!(child_kb < 16 << 10, "sleep's own peak: {child_kb} kB");
        assert_eq!(ballast.iter().map(|b| *b as usize).sum::<usize>(), 64 << 20);
    }
}
