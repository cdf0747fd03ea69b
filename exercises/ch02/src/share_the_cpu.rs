//! Exercise 2.4: share the CPU.
//!
//! A fiber that computes without yielding keeps every other fiber of its
//! thread waiting (step 3 of chapter 2's demo). A runtime started with
//! `Preempt::Checkpoints { quantum }` has a timer that says when the
//! running fiber's time is up, and `checkpoint()` yields then, and only
//! then: the rest of the time it is one load and a branch.
//!
//! Write `count_primes(below, progress)`: how many primes there are below
//! `below`, by trial division (a number is prime if no number from 2 up to
//! its square root divides it), sharing the CPU through `checkpoint()`.
//! While it counts, it keeps `progress` up to date for the other fibers to
//! read: `checked` (every number below it has been examined) and `found`
//! (how many of those are prime). A fiber that reads them, whenever it gets
//! a turn, must find that `found` is the number of primes below `checked`.
//!
//! Check it: `cargo run -p ch02-exercises -- 4`

// Starter code: `todo!()` leaves the arguments unused. Delete this line
// when your code uses them.
#![allow(unused_variables)]

use std::cell::Cell;

/// How far [`count_primes`] has come, for the other fibers to read while
/// it runs. Whenever another fiber runs, `found` is the number of primes
/// below `checked`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Every number below this one has been examined.
    pub checked: Cell<u64>,
    /// How many of them are prime.
    pub found: Cell<u64>,
}

/// The number of primes below `below`, by trial division, sharing the CPU
/// with the other fibers of a runtime that preempts at checkpoints, and
/// keeping `progress` up to date for them to read.
pub fn count_primes(below: u64, progress: &Progress) -> u64 {
    todo!("count the primes below `below`, keep `progress` up to date, and call checkpoint() in the loop")
}
