//! `cargo run -p ch02-exercises`: checks your solutions to chapter 2's
//! exercises and says what is still wrong (`-- N` checks only exercise N).
//!
//! Each module here is the check of one exercise: it runs your code from
//! `src/` on chapter 2's green-thread runtime and returns `Err` with an
//! explanation at the first thing that is not right.

use std::process::ExitCode;

use exercise_harness::{Chapter, Exercise};

mod fiber_local;
mod share_the_cpu;
mod sleep_until;
mod stack_pointer;

/// Chapter 2's exercises, in the order of the chapter (the last goes with
/// its last section, "Taking the CPU back").
const CHAPTER: Chapter = Chapter {
    number: 2,
    package: env!("CARGO_PKG_NAME"),
    exercises: &[
        Exercise {
            name: "sleep_until",
            title: "a sleep that lets the other fibers run",
            idea: "preemptive vs cooperative",
            check: sleep_until::check,
        },
        Exercise {
            name: "stack_pointer",
            title: "read rsp with inline assembly: one stack per fiber, growing down",
            idea: "instruction sets, registers, stack vs heap",
            check: stack_pointer::check,
        },
        Exercise {
            name: "fiber_local",
            title: "a value per fiber, where thread_local! has one per thread",
            idea: "fibers: fast switch, stack growth, FFI caveats, platform asm",
            check: fiber_local::check,
        },
        Exercise {
            name: "share_the_cpu",
            title: "count primes in a loop that shares the CPU through checkpoint()",
            idea: "preemptive vs cooperative",
            check: share_the_cpu::check,
        },
    ],
};

fn main() -> ExitCode {
    exercise_harness::main(&CHAPTER)
}
