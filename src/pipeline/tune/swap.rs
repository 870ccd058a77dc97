//! Putting layouts into the engine slot and taking them out: a layout runs once before
//! it serves, and the old layout's sessions go before the next one loads.

use std::sync::Arc;

use crate::engine::{Engine, EngineError, Layout};
use crate::pipeline::EngineSlot;

/// `shell`'s model in `layout`, with one run of each instance before it serves: a layout
/// that loads but cannot run (more instances than the memory allows, say) fails here, so it
/// is skipped like one that does not load, instead of failing every frame.
pub(super) fn load(shell: &Engine, layout: Layout) -> Result<Engine, EngineError> {
    let e = shell.relayout(layout)?;
    e.warm_up()?;
    Ok(e)
}

/// Puts a session-less copy of engine `from` in the slot and drops the engine: its sessions
/// go with the last reference, as every frame it ran has come back. `None`: another model
/// swapped in meanwhile.
pub(super) fn unload(slot: &EngineSlot, from: u64) -> Option<Arc<Engine>> {
    let old = slot.load_full();
    if old.id() != from {
        return None;
    }
    let shell = Arc::new(old.unloaded());
    let prev = slot.compare_and_swap(&old, shell.clone());
    if !Arc::ptr_eq(&*prev, &old) {
        return None;
    }
    drop(prev);
    if Arc::strong_count(&old) > 1 {
        tracing::warn!("the old layout is still referenced; its sessions outlive the relayout");
    }
    Some(shell)
}
