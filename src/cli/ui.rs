//! `--ui`: the live view's start-up from the run arguments (local and module mode).

use std::sync::Arc;

use super::run::RunArgs;

/// `--ui`: starts the live view; `control` is `None` in module mode (read-only).
pub fn start_ui(
    args: &RunArgs,
    source: &str,
    control: Option<edgelens::ui::Control>,
) -> anyhow::Result<Option<Arc<edgelens::ui::Tap>>> {
    let Some(addr) = &args.ui else {
        return Ok(None);
    };
    let addr = edgelens::ui::parse_addr(addr).map_err(anyhow::Error::msg)?;
    let read_only = control.is_none();
    let ui = edgelens::ui::start(edgelens::ui::UiOptions {
        addr,
        fps: args.ui_fps,
        threads: args.model.threads,
        source: source.to_string(),
        snapshots: args.snapshots.clone(),
        crop_thumbs: args.snapshot_crop,
        control,
    })?;
    tracing::info!(url = %format!("http://{}/", ui.addr), read_only, "live view");
    Ok(Some(ui.tap))
}
