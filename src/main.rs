//! The `mdt` binary: parse the command line, run the command, and turn any
//! failure into one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match mdt::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // clap's message is several lines (usage, a tip); keep the one
            // that says what is wrong.
            let text = e.render().to_string();
            eprintln!("mdt: {}", first_line(&text));
            return ExitCode::from(2);
        }
    };
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

/// The line of a clap error that says what is wrong; a line ending in ':'
/// ("required arguments were not provided:") is joined with what follows.
fn first_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: invalid arguments")
        .to_string();
    if first.ends_with(':') {
        let rest: Vec<&str> = lines.take_while(|l| !l.starts_with("Usage:")).collect();
        return format!("{first} {}", rest.join(", "));
    }
    first
}
