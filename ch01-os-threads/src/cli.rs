//! What every chapter binary does at the end of `main`: an error becomes one
//! line on stderr and exit code 1, never a backtrace (not even with
//! `RUST_BACKTRACE=1`: a learner who typed `--port http` needs the reason,
//! not the program's call stack).

use std::process::ExitCode;

/// The exit code for `result`, after printing its error as
/// `error: what happened: why` (the whole chain of causes, on one line).
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the causes one after the other on one line; `{:?}`
            // (what returning the error from `main` prints) adds a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The error for an argument the binary does not know: one line that points
/// at `--help` instead of printing all of it.
pub fn unknown(what: &str, arg: &str) -> anyhow::Error {
    anyhow::anyhow!("unknown {what} {arg:?} (see --help)")
}
