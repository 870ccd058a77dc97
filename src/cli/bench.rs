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
    /// Intra-op threads per engine instance, or `auto` (tuned with --instances in the pipeline).
    #[arg(long, default_value = "auto", value_parser = super::run::threads_arg)]
    threads: usize,
    /// Engine instances working on consecutive frames, or `auto`.
    #[arg(long, default_value = "auto", value_parser = super::run::instances_arg)]
    instances: usize,
    /// Instead: the full pipeline in every engine layout (auto, 1xN, Nx1, 2x(N/2)), side by
    /// side, with the machine limit; writes layouts.json.
    #[arg(long)]
    layouts: bool,
    /// Where bench.json and bench.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// No progress bars (CI logs).
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let settings = edgelens::bench::Settings {
        model: args.model,
        backends: args.backend,
        video: args.video,
        frames: args.frames,
        threads: args.threads,
        instances: args.instances,
        out: args.out,
        quiet: args.quiet,
    };
    if args.layouts {
        let r = edgelens::bench::layouts::run(&settings)?;
        print!("{}", edgelens::bench::layouts::table(&r));
        std::fs::create_dir_all(&settings.out)?;
        let path = settings.out.join("layouts.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&r)?)?;
        eprintln!("wrote {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = edgelens::bench::run(&settings)?;
    print!("{}", edgelens::bench::report::table(&outcome.report));
    eprintln!(
        "wrote {} and {}",
        outcome.json.display(),
        outcome.png.display()
    );
    Ok(ExitCode::SUCCESS)
}
