use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // SAFETY: first statement of main: no other thread exists yet (backends may set env vars).
    unsafe { edgelens::engine::backends::prepare_process() };
    let args = cli::Cli::parse();
    // Both ring and aws-lc end up in the dependency tree; pick one for every TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::init_logging();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line, the whole cause chain: operators read this in `iotedge logs`.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
