//! Exercise 2.1, solved: a sleep that lets the other fibers run.

use std::time::Instant;

use ch02_green_threads::yield_now;

// ANCHOR: sleep_until
/// Returns once `deadline` has passed (at once if it already has), letting
/// the other fibers of the runtime run meanwhile. Outside a runtime it still
/// returns after the deadline.
pub fn sleep_until(deadline: Instant) {
    // Each turn we look at the clock and hand the CPU on. While other fibers
    // are ready, that is a few nanoseconds of ours per round; when nobody
    // else is, `yield_now` returns at once and this loop spins on the clock
    // (the runtime has no way to sleep the thread until a deadline: that is
    // the timer a reactor brings, chapter 5).
    while Instant::now() < deadline {
        yield_now();
    }
}
// ANCHOR_END: sleep_until
