//! The `sluice` command: parse, run, and turn the outcome into an exit code.
//! Errors are printed as "error: {:#}" on stderr; a closed stdout while
//! printing results (as in `sluice list | head`) is not an error, while a
//! restore or fetch whose output stops being read is.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use sluice::Cancel;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(&args);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cancel = Cancel::new();
    let result = runtime.block_on(cli::run(args, &cancel));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            let code = e
                .downcast_ref::<sluice::Error>()
                .map_or(1, sluice::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// The error and its causes, like `{:#}`, but without repeating a cause
/// that a message already quotes (sluice's messages name their cause).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}
