//! `cargo run -p ch04-exercises`: checks your solutions to chapter 4's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise: it steps your futures by
//! hand with chapter 4's instrumented leaves (which count every poll and
//! drop), then runs them on chapter 4's executor against a real delay
//! server or real timers, and returns `Err` with an explanation at the first
//! thing that is not right.

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod greet;
mod select;
mod sleep;

/// Chapter 4's exercises, easiest first.
const CHAPTER: Chapter = Chapter {
    number: 4,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "select",
            title: "the first of two futures; the other is dropped (cancelled)",
            idea: "coroutines, promises/futures, async/await as generated state machines",
            check: select::check,
        },
        Exercise {
            name: "greet",
            title: "an async fn as a hand-written state machine, smaller than the compiler's",
            idea: "coroutine size = largest state (enums)",
            check: greet::check,
        },
        Exercise {
            name: "sleep",
            title: "a timer as a leaf future on a timerfd",
            idea: "poll / wait / wake phases; executor; reactor; leaf vs non-leaf",
            check: sleep::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
