//! `cargo run -p ch01-exercises`: checks your solutions to chapter 1's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise: it runs your code from
//! `src/` against the real thing (the delay server, `mmap`) and returns
//! `Err` with an explanation at the first thing that is not right.

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod fetch_all;
mod reservation;

/// Chapter 1's exercises, easiest first.
const CHAPTER: Chapter = Chapter {
    number: 1,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "fetch_all",
            title: "every request at once, one OS thread each",
            idea: "concurrency vs parallelism; threads as a means to both",
            check: fetch_all::check,
        },
        Exercise {
            name: "reservation",
            title: "reserved is not resident: mmap, touch, mincore",
            idea: "OS as abstraction over hardware; syscalls; MMU/virtual memory",
            check: reservation::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
