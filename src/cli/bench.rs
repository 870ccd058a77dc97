//! `edgelens bench`: the arguments, then `edgelens::bench` does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model folder holding model.toml.
    #[arg(long, default_value = "models/ssdlite-person")]
    model: PathBuf,
    /// Backends to compare (comma-separated); default: every built-in backend that runs the model.
    #[arg(long, value_delimiter = ',')]
    backend: Vec<String>,
    /// Video to decode (any source works; live sources fail fast here).
    #[arg(long, default_value = "samples/vtest.mp4")]
    video: String,
    /// Frames per phase.
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Intra-op threads per backend.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where bench.json and bench.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// No progress bars (CI logs).
    #[arg(long)]
    quiet: bool,
    /// Also time cold starts of `edgelens run` (spawn to first message, peak RSS): bench.json `start`.
    #[arg(long)]
    start: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let outcome = edgelens::bench::run(&edgelens::bench::Settings {
        model: args.model,
        backends: args.backend,
        video: args.video,
        frames: args.frames,
        threads: args.threads,
        out: args.out,
        quiet: args.quiet,
        start: args.start,
    })?;
    print!("{}", edgelens::bench::report::table(&outcome.report));
    eprintln!(
        "wrote {} and {}",
        outcome.json.display(),
        outcome.png.display()
    );
    Ok(ExitCode::SUCCESS)
}
