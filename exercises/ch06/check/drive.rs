//! Driving a check's futures: on chapter 5's runtime with a bound, or by
//! hand on another thread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread;

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

/// Polls `future` once on a thread of its own, with `waker`, and waits for
/// that thread: pinned does not mean tied to a thread. `Err` if the poll
/// panicked (the harness has recorded where).
pub fn poll_on_another_thread<F>(future: &mut Pin<Box<F>>, waker: &Waker) -> Result<Poll<F::Output>, String>
where
    F: Future + Send,
    F::Output: Send,
{
    thread::scope(|scope| scope.spawn(|| future.as_mut().poll(&mut Context::from_waker(waker))).join())
        .map_err(|_| "a poll on another thread panicked".to_string())
}
