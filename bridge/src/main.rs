//! `staples`: the sidecar binary. Parses the command line and reports errors with their
//! cause chain; all work happens in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = staples_bridge::cli::Cli::parse();
    match staples_bridge::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
