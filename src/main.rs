//! The `mdt` binary: parse the command line, run the command, and turn any
//! failure into one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mdt::cli::Cli::parse();
    match mdt::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` joins the context chain into one line; never `{:?}`, which
            // would print a backtrace-like report for what is a user mistake.
            eprintln!("mdt: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
