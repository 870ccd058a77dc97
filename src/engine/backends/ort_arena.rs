//! One CPU arena for every ONNX Runtime session in the process (issue 12 §4).
//!
//! By default each session owns a BFC arena that grows in powers of two: 25 MB of chunks for
//! ssdlite-person's activations, once per engine instance and again for every relayout the
//! tuner tries. Here one arena is registered on the ORT environment, growing only by what is
//! asked for, and sessions opt in with `session.use_env_allocators`. `ort` 2.0.0-rc.15 has no
//! safe wrapper for arena configuration, so this file holds the only raw `OrtApi` calls.
//!
//! Opt-in (`defaults::ORT_SHARED_ARENA`): it saved only ~4 MB of RSS (untouched arena pages
//! never count), and it never shrinks, so a process keeps the high-water mark of every session
//! it ever ran (docs/memory.md).

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::sys::{OrtArenaCfg, OrtStatusPtr};
use ort::AsPointer;

use crate::engine::EngineError;

/// How the shared arena grows (ORT's `OrtArenaCfg` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ArenaConfig {
    /// 0 = next power of two (ORT's default), 1 = same as requested.
    pub extend_strategy: usize,
    /// The first chunk, in bytes.
    pub initial_chunk_bytes: usize,
}

impl ArenaConfig {
    pub(super) const DEFAULT: ArenaConfig = ArenaConfig {
        extend_strategy: crate::defaults::ORT_ARENA_EXTEND_STRATEGY,
        initial_chunk_bytes: crate::defaults::ORT_ARENA_INITIAL_CHUNK,
    };

    fn entries(&self) -> [(&'static CStr, usize); 2] {
        [
            (c"arena_extend_strategy", self.extend_strategy),
            (c"initial_chunk_size_bytes", self.initial_chunk_bytes),
        ]
    }
}

/// A raw ORT call that failed, and ORT's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("ONNX Runtime {call} failed: {message}")]
pub(super) struct ArenaError {
    call: &'static str,
    message: String,
}

impl From<ArenaError> for EngineError {
    fn from(e: ArenaError) -> Self {
        EngineError::BackendUnavailable {
            backend: "ort".into(),
            reason: e.to_string(),
        }
    }
}

/// Registers the shared arena on `env` once per process; later calls return the first
/// outcome. `Err` means sessions must keep their own arenas (today's behaviour).
pub(super) fn shared(env: &Environment) -> Result<(), ArenaError> {
    static DONE: OnceLock<Result<(), ArenaError>> = OnceLock::new();
    DONE.get_or_init(|| {
        let r = register(env, &ArenaConfig::DEFAULT);
        match &r {
            Ok(()) => tracing::debug!(config = ?ArenaConfig::DEFAULT, "ONNX Runtime: one CPU arena shared by all sessions"),
            Err(e) => tracing::warn!(error = %e, "ONNX Runtime: no shared CPU arena; each session keeps its own (more memory)"),
        }
        r
    })
    .clone()
}

/// Creates an arena allocator with `cfg` and registers it on `env`. Fails if one is
/// already registered for CPU memory, or if ORT rejects the configuration.
pub(super) fn register(env: &Environment, cfg: &ArenaConfig) -> Result<(), ArenaError> {
    let info = MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Arena,
        MemoryType::Default,
    )
    .map_err(|e| ArenaError {
        call: "CreateMemoryInfo",
        message: e.to_string(),
    })?;
    let cfg = ArenaCfg::new(cfg)?;
    let api = ort::api();
    // SAFETY: `env` and `info` are live ORT objects for the whole call, and `cfg.0` is a
    // valid OrtArenaCfg; ORT copies what it needs from both and keeps neither pointer.
    let status = unsafe {
        (api.CreateAndRegisterAllocator)(env.ptr().cast_mut(), info.ptr(), cfg.0.cast_const())
    };
    check("CreateAndRegisterAllocator", status)
}

/// An owned `OrtArenaCfg`, released on drop.
struct ArenaCfg(*mut OrtArenaCfg);

impl ArenaCfg {
    fn new(cfg: &ArenaConfig) -> Result<ArenaCfg, ArenaError> {
        let entries = cfg.entries();
        let keys: Vec<*const c_char> = entries.iter().map(|(k, _)| k.as_ptr()).collect();
        let values: Vec<usize> = entries.iter().map(|(_, v)| *v).collect();
        let mut out: *mut OrtArenaCfg = std::ptr::null_mut();
        // SAFETY: `keys` (NUL-terminated static strings) and `values` both hold
        // `entries.len()` elements and outlive the call; ORT writes only `out`.
        let status = unsafe {
            (ort::api().CreateArenaCfgV2)(keys.as_ptr(), values.as_ptr(), keys.len(), &mut out)
        };
        check("CreateArenaCfgV2", status)?;
        if out.is_null() {
            return Err(ArenaError {
                call: "CreateArenaCfgV2",
                message: "returned no configuration".into(),
            });
        }
        Ok(ArenaCfg(out))
    }
}

impl Drop for ArenaCfg {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from CreateArenaCfgV2 and is released exactly once, here.
        unsafe { (ort::api().ReleaseArenaCfg)(self.0) }
    }
}

/// Turns an ORT status into a `Result`, releasing the status.
fn check(call: &'static str, status: OrtStatusPtr) -> Result<(), ArenaError> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status from ORT is a valid OrtStatus; its message is a
    // NUL-terminated string that lives until ReleaseStatus, so it is copied first.
    let message = unsafe {
        let m = (api.GetErrorMessage)(status.0);
        let text = if m.is_null() {
            "no message".to_string()
        } else {
            CStr::from_ptr(m).to_string_lossy().into_owned()
        };
        (api.ReleaseStatus)(status.0);
        text
    };
    Err(ArenaError { call, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arena_ort_refuses_is_an_error_with_ort_s_reason_not_a_panic() {
        let env = super::super::environment().expect("ONNX Runtime (make deps)");
        let bad = ArenaConfig {
            extend_strategy: 7, // neither next-power-of-two (0) nor same-as-requested (1)
            ..ArenaConfig::DEFAULT
        };
        let e = register(env, &bad).expect_err("invalid extend strategy");
        let text = e.to_string();
        assert!(text.starts_with("ONNX Runtime "), "{text}");
        let engine: EngineError = e.into();
        assert!(matches!(engine, EngineError::BackendUnavailable { .. }));
    }

    #[test]
    fn the_arena_config_passes_both_keys() {
        let keys: Vec<&str> = ArenaConfig::DEFAULT
            .entries()
            .iter()
            .map(|(k, _)| k.to_str().expect("ascii"))
            .collect();
        assert_eq!(keys, ["arena_extend_strategy", "initial_chunk_size_bytes"]);
        // ORT accepts them (a wrong key or value would fail CreateArenaCfgV2).
        super::super::environment().expect("ONNX Runtime (make deps)");
        ArenaCfg::new(&ArenaConfig::DEFAULT).expect("valid configuration");
    }
}
