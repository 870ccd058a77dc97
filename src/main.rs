use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Before any thread exists, so every allocation follows it (src/memory.rs).
    let tuning = edgelens::memory::tune_allocator();
    // SAFETY: still before any other thread exists (backends may set env vars).
    unsafe { edgelens::engine::backends::prepare_process() };
    let args = cli::Cli::parse();
    // Both ring and aws-lc end up in the dependency tree; pick one for every TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::init_logging();
    tracing::debug!(?tuning, "allocator");
    if let Err(e) = edgelens::memory::start_trimmer(edgelens::defaults::MEMORY_TRIM_INTERVAL) {
        tracing::warn!(error = %e, "no heap trimmer thread; RSS may creep after source restarts");
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole cause chain: operators read this in `iotedge logs`.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
