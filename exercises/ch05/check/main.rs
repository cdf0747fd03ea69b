//! `cargo run -p ch05-exercises`: checks your solutions to chapter 5's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise: it first polls your
//! futures by hand with a waker that counts its wakes (so a lost wake-up is
//! named, not waited for), then runs them on chapter 5's runtime, and
//! returns `Err` with an explanation at the first thing that is not right.

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod bounded;
mod budget;
mod join;
mod yield_now;

/// Chapter 5's exercises, easiest first.
const CHAPTER: Chapter = Chapter {
    number: 5,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "yield_now",
            title: "a future that gives the other tasks a turn",
            idea: "Future trait, async/await, Waker as Rust's only pieces",
            check: yield_now::check,
        },
        Exercise {
            name: "join",
            title: "join!: two futures at once, one waker",
            idea: "poll / wait / wake phases; executor; reactor; leaf vs non-leaf",
            check: join::check,
        },
        Exercise {
            name: "bounded",
            title: "a bounded channel: send waits while it is full (back-pressure)",
            idea: "loosely coupled reactor and executor",
            check: bounded::check,
        },
        Exercise {
            name: "budget",
            title: "a leaf future that spends the task's cooperative budget",
            idea: "an executor decides who gets the CPU, and when",
            check: budget::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
