//! `edgelens bench`: the arguments, then `edgelens::bench` does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model folder holding model.toml; repeat to measure several side by side (fp32 vs int8).
    #[arg(long, default_value = "models/ssdlite-person")]
    model: Vec<PathBuf>,
    /// Backends to compare (comma-separated); default: every built-in backend that runs the model.
    #[arg(long, value_delimiter = ',')]
    backend: Vec<String>,
    /// Video to decode (any source works; live sources fail fast here).
    #[arg(long, default_value = "samples/vtest.mp4")]
    video: String,
    /// Frames per phase.
    #[arg(long, default_value_t = 300)]
    frames: u64,
    /// Intra-op threads per engine instance; a comma-separated list measures each
    /// (`all` = every core, `auto` = tuned with --instances in the pipeline).
    #[arg(long, value_delimiter = ',', default_value = "auto", value_parser = parse_threads)]
    threads: Vec<usize>,
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
    /// Also time cold starts of `edgelens run` (spawn to first message, peak RSS):
    /// bench.json `start`.
    #[arg(long)]
    start: bool,
    /// Also run the pipeline without the tracking stage (tracker, zones, events) and print
    /// both pipeline/ceiling ratios side by side: what the stage costs.
    #[arg(long)]
    scene_ab: bool,
    /// Also write bench.html: a self-contained report (tables, percentiles, the chart inline).
    #[arg(long)]
    html: bool,
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

/// A thread count: `auto` (0), `all` for every core this process may use, or 1..=max.
fn parse_threads(s: &str) -> Result<usize, String> {
    if s == "all" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    super::run::threads_arg(s).map_err(|_| {
        format!(
            "{s:?}: give `auto`, `all`, or a thread count in 1..={}",
            edgelens::engine::layout::MAX_THREADS
        )
    })
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
    let layouts = args.layouts;
    let settings = settings(args);
    if layouts {
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
    if let Some(html) = &outcome.html {
        eprintln!("wrote {}", html.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn settings(args: BenchArgs) -> edgelens::bench::Settings {
    // clap fills the defaults, so both lists hold at least one value.
    let mut models = args.model.into_iter();
    let mut threads = args.threads.into_iter();
    edgelens::bench::Settings {
        model: models
            .next()
            .unwrap_or_else(|| "models/ssdlite-person".into()),
        backends: args.backend,
        video: args.video,
        frames: args.frames,
        threads: threads.next().unwrap_or(0),
        instances: args.instances,
        out: args.out,
        quiet: args.quiet,
        extra_models: models.collect(),
        extra_threads: threads.collect(),
        html: args.html,
        scene_ab: args.scene_ab,
        start: args.start,
    }
}
