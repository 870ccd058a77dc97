//! Process-wide allocator settings: why RSS grew in steps at model swaps, and the fix.
//!
//! glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB),
//! so after the first model swap, session-sized blocks (weights, ORT arena chunks) come
//! from the heap, and each thread's own arena, instead of mmap. Freed, they leave holes that
//! the next model's differently sized blocks do not fit, and `malloc_trim` cannot return
//! pages that still hold a live byte. Pinning the threshold keeps large blocks on mmap
//! (returned whole on free), and two arenas instead of 8 x cores keeps the rest compact.
//! tests/memory_cycles.rs shows the growth before and after; docs/memory.md has the figures.

use crate::defaults;

/// What [`tune_allocator`] did, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// Threshold and arena count set.
    Applied,
    /// The operator set glibc malloc tunables (`GLIBC_TUNABLES`); theirs win.
    LeftToOperator,
    /// Not glibc: nothing to do.
    Unsupported,
}

/// True when `GLIBC_TUNABLES` already sets a malloc tunable.
pub fn operator_tunes_malloc(glibc_tunables: Option<&str>) -> bool {
    glibc_tunables.is_some_and(|v| v.split(':').any(|kv| kv.starts_with("glibc.malloc.")))
}

/// Pins glibc's mmap threshold and caps its arenas. Call first thing in `main`.
pub fn tune_allocator() -> Tuning {
    let env = std::env::var("GLIBC_TUNABLES").ok();
    if operator_tunes_malloc(env.as_deref()) {
        return Tuning::LeftToOperator;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocator parameters; it takes no pointers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, defaults::MALLOC_MMAP_THRESHOLD);
            libc::mallopt(libc::M_ARENA_MAX, defaults::MALLOC_ARENA_MAX);
        }
        Tuning::Applied
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        Tuning::Unsupported
    }
}

/// Hands freed heap pages back to the kernel (glibc keeps them otherwise): after a model
/// load, whose parse and optimization passes free tens of MB, and after a swap.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own free lists; it takes no pointers.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released, "heap trimmed");
    }
}

/// Trims the heap every `every` on a small background thread. Source restarts (a file
/// source looping, a camera reconnecting) rebuild the GStreamer graph and leave freed holes
/// that glibc keeps; the soak showed +5-14 MB per file loop, all given back by a trim.
pub fn start_trimmer(every: std::time::Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("mem-trim".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(every);
            release_freed();
        })
        .map(drop)
}

/// RSS of this process in MB (`VmRSS`), 0 when unknown.
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_tunables_win() {
        assert!(!operator_tunes_malloc(None));
        assert!(!operator_tunes_malloc(Some(
            "glibc.rtld.optional_static_tls=512"
        )));
        assert!(operator_tunes_malloc(Some(
            "glibc.rtld.nns=2:glibc.malloc.arena_max=4"
        )));
    }
}
