//! What the io_uring test binaries share: skipping, with the reason, where
//! io_uring is not available, and waiting (bounded) for the driver.
//!
//! Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use ch05_runtime::uring::{self, Unavailable};

/// Starts the completion driver; `false` (after printing why) where io_uring
/// is not available here, and the test then returns early, passing. Any
/// other failure is the test's.
pub fn uring_or_skip(test: &str) -> io::Result<bool> {
    match uring::start() {
        Ok(()) => Ok(true),
        Err(e) => match Unavailable::from_error(&e) {
            Some(why) => {
                // Straight to stderr, not through `eprintln!`, which the test
                // harness captures (and shows only for failing tests).
                let _ = writeln!(io::stderr(), "skipped {test}: io_uring is not available here: {why}");
                Ok(false)
            }
            None => Err(e),
        },
    }
}

/// Spins (yielding the CPU) until `condition` holds. The deadline only turns a
/// broken test into a failure instead of a hang; it is not a speed check.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < give_up, "gave up waiting until {what}");
        thread::yield_now();
    }
}
