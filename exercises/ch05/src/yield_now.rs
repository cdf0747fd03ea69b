//! Exercise 5.1: give the other tasks a turn.
//!
//! A task that computes for a long time without awaiting anything starves
//! the others (chapter 2's hog, again). Write the future that gives way:
//! awaiting it lets every other ready task run, then the task goes on. It
//! is a future that waits for nothing, so the only one who can wake it is
//! itself. (Chapter 5's runtime has one, `coop::yield_now`: write yours
//! before you look at it.)
//!
//! Check it: `cargo run -p ch05-exercises -- 1`

// Starter code: until `poll` uses them, the field and the arguments look
// unused. Delete this line when your code uses them.
#![allow(dead_code, unused_variables, unused_mut)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that lets every other ready task run once before the task that
/// awaits it goes on: `yield_now().await`.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future [`yield_now`] returns.
#[derive(Debug)]
pub struct YieldNow {
    /// Whether it has already returned `Pending` once.
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        todo!("Pending once (after making sure the task is polled again), then Ready")
    }
}
