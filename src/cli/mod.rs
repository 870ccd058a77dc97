//! Command-line front end: `detect`, `run`, `bench`, `track`. anyhow lives here and nowhere else.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod detect;
mod module;
mod quantize;
mod run;
mod sources;
mod track;
mod ui;

#[derive(Debug, Parser)]
#[command(
    name = "edgelens",
    version,
    about = "On-device video inference for Azure IoT Edge"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect objects in still images and print one JSON message per image.
    Detect(detect::DetectArgs),
    /// Run a video source through the model and publish detections (the main job).
    Run(Box<run::RunArgs>),
    /// Benchmark backends on a video: decode, inference ceiling, full pipeline.
    Bench(bench::BenchArgs),
    /// Track MOTChallenge detections; MOTChallenge results on stdout (for py-motmetrics, TrackEval).
    Track(track::TrackArgs),
    /// Make an int8 (QDQ) copy of an ONNX model folder, calibrated on a video (runs models/convert/quantize.py).
    Quantize(quantize::QuantizeArgs),
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // rumqttc's debug output includes CONNECT packets, i.e. the SAS token: never below info.
        .add_directive("rumqttc=info".parse().expect("static directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Detect(args) => detect::run(args),
        Command::Run(args) => run::run(*args),
        Command::Bench(args) => bench::run(args),
        Command::Track(args) => track::run(args),
        Command::Quantize(args) => quantize::run(args),
    }
}
