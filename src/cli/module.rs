//! Module mode: EdgeHub publishing and the twin as control plane. The command line gives
//! the base config; the twin overrides it field by field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use edgelens::control::config::{
    DesiredConfig, DetectionConfig, ModelConfig, OutputConfig, SnapshotsConfig, SourceConfig,
};
use edgelens::control::{self, ModuleOptions};
use edgelens::pipeline::OutputMode;

use super::run::RunArgs;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // The twin is the control plane: it cannot express raw launch text, so neither may the
    // command line in module mode (it would be a second, unreported config).
    anyhow::ensure!(
        args.source.pipeline.is_none(),
        "--pipeline is not available in module mode: use --source with a preset, or --no-module"
    );
    anyhow::ensure!(
        !args.source.live,
        "--live only applies to --pipeline and is not available in module mode"
    );
    anyhow::ensure!(
        !(args.source.source.len() > 1 && args.name.is_some()),
        "--name names a single source; with several, name each: --source NAME=URI"
    );
    let scene_args = super::run::scene_args(&args)?;
    let (mut initial, models_dir) = initial_config(&args);
    // The command line's scene is the base the twin overrides, like every other field.
    let scene = &scene_args.scene;
    initial.output = Some(OutputConfig {
        mode: Some(args.output_mode.unwrap_or(OutputMode::Events)),
        counts_every_secs: Some(scene.counts_every_secs),
        counts_min_secs: Some(scene.counts_min_secs),
        heartbeat_secs: Some(scene.heartbeat_secs),
        stationary_secs: Some(scene.stationary_secs),
        events_batch_secs: Some(scene.events_batch_secs),
        ..Default::default()
    });
    initial.zones = (!scene.zones.is_empty()).then(|| scene.zones.clone());
    initial.lines = (!scene.lines.is_empty()).then(|| scene.lines.clone());
    // `--zones NAME=FILE`: that source's own zones and lines (`default` is `source`).
    for (key, own) in &scene_args.own {
        let s = match (&mut initial.source, &mut initial.sources) {
            (Some(s), _) if key == edgelens::defaults::DEFAULT_SOURCE => s,
            (_, Some(all)) => all
                .get_mut(key)
                .context("--zones names an unknown source")?,
            _ => anyhow::bail!("--zones {key}=...: no such source"),
        };
        s.zones = Some(own.zones.clone());
        s.lines = Some(own.lines.clone());
    }
    initial.snapshots = Some(SnapshotsConfig {
        container: Some(args.blob_container.clone()),
    });
    let errors = control::config::validate(&initial);
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    let metrics = super::run::metrics_addr(&args.metrics_addr)?;
    // Read-only: no control; the twin stays the single control plane.
    let ui = super::ui::start_ui(&args, args.name.as_deref().unwrap_or("module"), None)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    control::run_module(
        ModuleOptions {
            initial,
            source_name: args
                .name
                .clone()
                .or_else(|| super::sources::single(&args.source.source).0),
            models_dir,
            cache_dir: args
                .cache_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("edgelens-models")),
            max_model_bytes: args.max_model_mb.saturating_mul(1024 * 1024),
            fetch_timeout: Duration::from_secs(args.model_fetch_timeout.max(1)),
            cache_max_bytes: args.model_cache_mb.saturating_mul(1024 * 1024),
            queue: super::run::queue_limits(&args),
            stats_interval: Duration::from_secs(args.stats_interval.max(1)),
            presets_dir: args.source.presets.clone(),
            metrics,
            realtime: args.source.realtime,
            tracker: args.tracker.clone(),
            snapshot_crop: scene_args.snapshots.as_ref().is_some_and(|s| s.crop),
            snapshots: scene_args.snapshots.map(|s| s.root),
            ui,
        },
        stop,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The command line as a desired document, plus the folder bundled model names resolve in.
fn initial_config(args: &RunArgs) -> (DesiredConfig, PathBuf) {
    let model_dir: &Path = &args.model.model;
    let name = model_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| edgelens::defaults::MODEL_NAME.into());
    let models_dir = match model_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => PathBuf::from("models"),
    };
    let params: BTreeMap<String, String> = args.source.set.iter().cloned().collect();
    let source = |uri: String| SourceConfig {
        uri: Some(uri),
        params: (!params.is_empty()).then(|| params.clone()),
        max_fps: args.max_fps.map(f64::from),
        ..Default::default()
    };
    // One --source is the twin's `source` (named `default`); several are its `sources`.
    let (single, several) = if args.source.source.len() > 1 {
        let all = super::sources::named(&args.source.source);
        (
            None,
            Some(all.into_iter().map(|(n, u)| (n, source(u))).collect()),
        )
    } else {
        (
            Some(source(super::sources::single(&args.source.source).1)),
            None,
        )
    };
    let detection =
        (args.min_confidence.is_some() || !args.classes.is_empty()).then(|| DetectionConfig {
            min_confidence: args.min_confidence.map(f64::from),
            classes: (!args.classes.is_empty()).then(|| args.classes.clone()),
        });
    let config = DesiredConfig {
        model: Some(ModelConfig {
            name: Some(name),
            uri: None,
            sha256: None,
            backend: args.model.backend.clone(),
            threads: (args.model.threads > 0).then_some(args.model.threads as u32),
            instances: (args.model.instances > 0).then_some(args.model.instances as u32),
        }),
        source: single,
        sources: several,
        detection,
        ..Default::default()
    };
    (config, models_dir)
}
