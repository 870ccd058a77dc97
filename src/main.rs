use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
