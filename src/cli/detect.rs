use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use edgelens::engine::{check_min_confidence, DetectionFilter, Engine, EngineOptions};
use edgelens::message::{FrameInfo, InferenceMessage, ModelInfo};

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Model folder holding model.toml.
    #[arg(long, default_value = "models/ssdlite-person")]
    model: PathBuf,
    /// Inference backend; default: the first the manifest lists, else the first built in
    /// that runs the model's format (an unknown name gets the list of available ones).
    #[arg(long)]
    backend: Option<String>,
    /// Intra-op threads for the backend.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Override the manifest's confidence threshold.
    #[arg(long)]
    min_confidence: Option<f32>,
    /// Keep only these labels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Write annotated PNGs here.
    #[arg(long)]
    annotate: Option<PathBuf>,
    /// Images to run on.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    if let Some(c) = args.min_confidence {
        check_min_confidence(c).map_err(|e| anyhow::anyhow!("--min-confidence {e}"))?;
    }
    // Check every image exists before paying for a model load.
    for p in &args.images {
        anyhow::ensure!(p.is_file(), "image {} not found", p.display());
    }
    let engine = Engine::load(
        &args.model,
        &EngineOptions {
            backend: args.backend.clone(),
            threads: args.threads,
        },
    )?;
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create annotation folder {}", dir.display()))?;
    }
    let filter = DetectionFilter {
        min_confidence: args.min_confidence,
        classes: args.classes.clone(),
    };
    let model_info = ModelInfo {
        name: engine.model().manifest.name.clone(),
        version: engine.model().manifest.version.clone(),
    };
    let stdout = std::io::stdout();
    for path in &args.images {
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .with_context(|| format!("cannot open image {}", path.display()))?
            .decode()
            .with_context(|| format!("{} is not a readable image (PNG or JPEG)", path.display()))?
            .to_rgb8();
        let (dets, times) = engine.detect_image(&img, &filter)?;
        tracing::debug!(image = %path.display(), infer_ms = times.infer.as_secs_f64() * 1e3, n = dets.len(), "detected");
        let msg = InferenceMessage::new(
            &path.display().to_string(),
            FrameInfo {
                pts_ms: 0,
                width: img.width(),
                height: img.height(),
            },
            model_info.clone(),
            &dets,
        );
        let mut out = stdout.lock();
        serde_json::to_writer(&mut out, &msg)?;
        writeln!(out)?;
        if let Some(dir) = &args.annotate {
            let mut canvas = img.clone();
            edgelens::annotate::draw(&mut canvas, &dets);
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "image".into());
            let target = dir.join(format!("{stem}.png"));
            canvas
                .save(&target)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
