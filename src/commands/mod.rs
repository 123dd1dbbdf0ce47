//! One module per subcommand. Each takes its parsed arguments and returns the
//! exit code; errors bubble up to `main`, which prints them on one line.

mod flame;
mod inspect;
mod trace;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Flame(args) => flame::run(&args),
    }
}
