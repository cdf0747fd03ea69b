//! Running a check's futures on chapter 5's runtime, with a bound.

use std::future::Future;

use ch05_runtime::Runtime;
use ch05_runtime::time::timeout;
use exercise_harness::wakes::PATIENCE;

/// Runs `future` to the end on `runtime`, for at most [`PATIENCE`]: a lost
/// wake-up becomes `Err` with `what` ran too long, instead of a hang.
///
/// Under Miri, which cannot run the reactor that chapter 5's timers need
/// (`epoll`), the future runs without the bound; the harness's own limit
/// still ends a hang.
pub fn run_patiently<F: Future>(runtime: &Runtime, what: &str, future: F) -> Result<F::Output, String> {
    if cfg!(miri) {
        return Ok(runtime.block_on(future));
    }
    runtime.block_on(timeout(PATIENCE, future)).map_err(|_| {
        format!(
            "{what} did not finish within {} s: a wake-up was lost (a future polled with a waker other than the \
             one it was given, or left Pending with nobody to wake it)",
            PATIENCE.as_secs()
        )
    })
}
