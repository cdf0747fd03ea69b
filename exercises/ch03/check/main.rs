//! `cargo run -p ch03-exercises`: checks your solutions to chapter 3's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise: it runs your code from
//! `src/` on real sockets and pipes, chapter 3's `Poll` and `Ring`, on
//! 127.0.0.1, and returns `Err` with an explanation at the first thing that
//! is not right (or skips, saying why, where io_uring is not available).

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod background_read;
mod drain;
mod oneshot_echo;
mod ring_read;

/// Chapter 3's exercises, easiest first.
const CHAPTER: Chapter = Chapter {
    number: 3,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "drain",
            title: "read until WouldBlock, as edge-triggered epoll needs",
            idea: "bitmasks; level- vs edge-triggered epoll",
            check: drain::check,
        },
        Exercise {
            name: "oneshot_echo",
            title: "an echo server with EPOLLONESHOT: re-arm what fired",
            idea: "bitmasks; level- vs edge-triggered epoll",
            check: oneshot_echo::check,
        },
        Exercise {
            name: "background_read",
            title: "a file read on a thread, reported through the Poll",
            idea: "is all I/O blocking? (page cache, regular files)",
            check: background_read::check,
        },
        Exercise {
            name: "ring_read",
            title: "a pipe read through io_uring: push, submit, take the completion",
            idea: "readiness vs completion (epoll vs io_uring / IOCP)",
            check: ring_read::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
