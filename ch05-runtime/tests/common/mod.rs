//! What the test binaries share: every kind of runtime, waiting (bounded)
//! for a condition, and skipping, with the reason, where io_uring is not
//! available.
//!
//! Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use ch05_runtime::uring::{self, Unavailable};
use ch05_runtime::{IoDriver, Runtime};

/// Every kind of runtime: single-threaded with the process's reactor
/// thread, single-threaded driving its own reactor, and two workers.
pub fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Runtime::new()?,
        Runtime::builder().io_driver(IoDriver::ExecutorThread).build()?,
        Runtime::builder().worker_threads(2).build()?,
    ])
}

/// Starts the completion driver; `false` (after printing why) where io_uring
/// is not available here, and the test then returns early, passing. Any
/// other failure is the test's.
pub fn uring_or_skip(test: &str) -> io::Result<bool> {
    match uring::start() {
        Ok(()) => Ok(true),
        Err(e) => Unavailable::skip_or_fail(test, e).map(|()| false),
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
