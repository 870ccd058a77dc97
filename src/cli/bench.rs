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
    /// Several sources in one process instead: N copies of the video per row, e.g. 1,2,4,8
    /// (one engine on all cores, vs N processes at 1 thread, vs the machine limit).
    #[arg(long, value_delimiter = ',')]
    streams: Vec<usize>,
    /// With --streams: intra-op threads of the one engine serving every stream (default:
    /// all cores).
    #[arg(long)]
    streams_threads: Option<usize>,
    /// With --streams: one stream at 1 thread, no comparison (the N-processes side).
    #[arg(long, hide = true)]
    streams_alone: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if !args.streams.is_empty() {
        anyhow::ensure!(
            args.streams
                .iter()
                .all(|n| (1..=edgelens::defaults::MAX_SOURCES).contains(n)),
            "--streams: each count must be 1..{}",
            edgelens::defaults::MAX_SOURCES
        );
        let alone = args.streams_alone;
        let counts = args.streams.clone();
        let threads = args.streams_threads;
        let settings = settings(args);
        let r = edgelens::bench::streams::run(&settings, &counts, alone, threads)?;
        let json = edgelens::bench::streams::write(&r, &settings.out)?;
        print!("{}", edgelens::bench::streams::table(&r));
        eprintln!("wrote {}", json.display());
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = edgelens::bench::run(&settings(args))?;
    print!("{}", edgelens::bench::report::table(&outcome.report));
    eprintln!(
        "wrote {} and {}",
        outcome.json.display(),
        outcome.png.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn settings(args: BenchArgs) -> edgelens::bench::Settings {
    edgelens::bench::Settings {
        model: args.model,
        backends: args.backend,
        video: args.video,
        frames: args.frames,
        threads: args.threads,
        out: args.out,
        quiet: args.quiet,
    }
}
