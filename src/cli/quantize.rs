//! `edgelens quantize`: a thin wrapper over `models/convert/quantize.py` (ONNX Runtime static int8
//! quantization, QDQ), run in the venv that `models/convert/convert.sh --quantize-venv` keeps.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, ensure, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// fp32 ONNX model folder holding model.toml.
    #[arg(long)]
    model: PathBuf,
    /// Video whose frames calibrate the activation ranges (not your test images).
    #[arg(long)]
    calibration: PathBuf,
    /// Output model folder (created; its model.toml, labels and LICENSE are written too).
    #[arg(long)]
    out: PathBuf,
    /// Calibration frames (every --step-th frame from the first).
    #[arg(long, default_value_t = 40)]
    frames: u32,
    /// Take every STEP-th frame of the video.
    #[arg(long, default_value_t = 20)]
    step: u32,
    /// Folder holding quantize.py and convert.sh (default: $EDGELENS_CONVERT_DIR, ./models/convert,
    /// or the source tree's models/convert).
    #[arg(long)]
    convert_dir: Option<PathBuf>,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<ExitCode> {
    // Check the inputs before paying for a venv.
    ensure!(
        args.model.join("model.toml").is_file(),
        "{}/model.toml not found: --model must be a model folder",
        args.model.display()
    );
    ensure!(
        args.calibration.is_file(),
        "calibration video {} not found",
        args.calibration.display()
    );
    ensure!(
        (1..=200).contains(&args.frames) && args.step >= 1,
        "--frames must be 1..200 and --step at least 1"
    );
    let dir = convert_dir(args.convert_dir.as_deref())?;
    let python = venv_python(&dir)?;
    let status = Command::new(&python)
        .arg(dir.join("quantize.py"))
        .arg("--model")
        .arg(&args.model)
        .arg("--calibration")
        .arg(&args.calibration)
        .arg("--out")
        .arg(&args.out)
        .args(["--frames", &args.frames.to_string()])
        .args(["--step", &args.step.to_string()])
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    ensure!(status.success(), "quantize.py failed ({status}): see above");
    println!("{}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The first folder that holds quantize.py among the explicit one, the env, the cwd and the source tree.
fn convert_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => std::env::var_os("EDGELENS_CONVERT_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                PathBuf::from("models/convert"),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("models/convert"),
            ])
            .collect(),
    };
    for c in &candidates {
        if c.join("quantize.py").is_file() && c.join("convert.sh").is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "models/convert/quantize.py not found (looked in {}): pass --convert-dir or set EDGELENS_CONVERT_DIR",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Creates or reuses the quantization venv (convert.sh does it idempotently) and returns its python.
fn venv_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("bash")
        .arg(dir.join("convert.sh"))
        .arg("--quantize-venv")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run bash for convert.sh --quantize-venv")?;
    ensure!(
        out.status.success(),
        "convert.sh --quantize-venv failed ({}): it needs python3 >= 3.11 with venv and PyPI access",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let python = stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .context("convert.sh --quantize-venv printed no python path")?;
    Ok(python)
}
