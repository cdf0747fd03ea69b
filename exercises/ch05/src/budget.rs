//! Exercise 5.4: a leaf future that takes part in the cooperative budget.
//!
//! `Numbers` hands out 0, 1, 2, ... and is always ready, like a channel a
//! producer keeps full. A task that loops over it never meets a `Pending`,
//! so its poll never ends, and every other task on its thread waits. Chapter
//! 5's own leaf futures (a channel's `recv`, a socket's `read`, ...) avoid
//! that by spending the task's budget: one unit for each `Ready`, and when
//! none is left, `Pending` (the task is woken at once, goes to the back of
//! the run queue, and gets a fresh budget at its next poll). Make `Numbers`
//! do the same, with `ch05_runtime::coop::poll_proceed`.
//!
//! Check it: `cargo run -p ch05-exercises -- 4`

// Starter code: until `poll_next` uses them, the imports, the arguments and the field look
// unused. Delete this line when your code uses them.
#![allow(unused_imports, unused_variables, dead_code)]

use std::future::poll_fn;
use std::task::{Context, Poll, ready};

use ch05_runtime::coop;

/// 0, 1, 2, ...: always one more, at once.
#[derive(Debug, Default)]
pub struct Numbers {
    /// The next number to hand out.
    next: u64,
}

impl Numbers {
    /// The next number. Ready at once, but only while the task has budget
    /// left; then `Pending`, with the task already woken.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        todo!("take a unit of the budget (coop::poll_proceed), then hand out the next number and spend the unit")
    }

    /// Waits for the next number (see [`poll_next`](Self::poll_next)).
    pub async fn next(&mut self) -> u64 {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}
