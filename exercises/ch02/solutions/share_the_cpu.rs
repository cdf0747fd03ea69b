//! Exercise 2.4, solved: share the CPU.

use std::cell::Cell;

use ch02_green_threads::checkpoint;

/// How far [`count_primes`] has come, for the other fibers to read while
/// it runs. Between two of its steps, `found` is always the number of
/// primes below `checked`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Every number below this one has been examined.
    pub checked: Cell<u64>,
    /// How many of them are prime.
    pub found: Cell<u64>,
}

// ANCHOR: count_primes
/// The number of primes below `below`, by trial division, sharing the CPU
/// with the other fibers of a runtime that preempts at checkpoints, and
/// keeping `progress` up to date for them to read.
pub fn count_primes(below: u64, progress: &Progress) -> u64 {
    let mut found = 0;
    for n in 2..below {
        if is_prime(n) {
            found += 1;
        }
        // Both halves of the progress, then the checkpoint: a fiber that
        // runs because we yield there sees `found` and `checked` agree.
        progress.found.set(found);
        progress.checked.set(n + 1);
        // Once per number: a few hundred divisions at most between two
        // checks (microseconds, against a quantum of milliseconds), among
        // which the check itself, a load and a branch, is lost.
        checkpoint();
    }
    found
}

/// Whether `n` is prime: no odd divisor up to its square root.
fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut divisor = 3;
    while divisor * divisor <= n {
        if n.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}
// ANCHOR_END: count_primes
