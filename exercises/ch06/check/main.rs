//! `cargo run -p ch06-exercises`: checks your solutions to chapter 6's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise. It polls your futures by
//! hand first, with a waker that counts its wakes and with futures that
//! note where they were polled and dropped, moving what is allowed to move
//! between the polls (a `Pin<Box<_>>`, to another thread and back); then it
//! runs them on chapter 5's runtime. Addresses are compared as numbers and
//! never followed, so a wrong solution gets an explanation, not undefined
//! behaviour. Each check returns `Err` at the first thing that is not right.

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod drive;
mod first_of;
mod map;
mod read_record;

/// Chapter 6's exercises, easiest first.
const CHAPTER: Chapter = Chapter {
    number: 6,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "first_of",
            title: "the first of two borrowed futures: Unpin, Pin::new and pin!",
            idea: "moving a self-referential struct; Pin",
            check: first_of::check,
        },
        Exercise {
            name: "map",
            title: "pin projection by hand for a two-field future",
            idea: "moving a self-referential struct; Pin",
            check: map::check,
        },
        Exercise {
            name: "read_record",
            title: "a coroutine that reads into its own buffer, by hand",
            idea: "moving a self-referential struct; Pin",
            check: read_record::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
