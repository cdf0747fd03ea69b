//! Exercise 4.1: the first of two futures.
//!
//! `join_all` waits for every future; `select` waits for the first of two,
//! and cancels the other. In chapter 4's world a future is a value with a
//! `poll` method, so cancelling one is simply dropping it: its `Drop` takes
//! its socket out of the event queue. Write `Select`'s `poll`.
//!
//! Check it: `cargo run -p ch04-exercises -- 1`

// Starter code: until `poll` reads them, the fields look unused. Delete
// this line when your code uses them.
#![allow(dead_code)]

use ch04_coroutines::future::{Future, PollState};

/// One of two outputs: which future finished first, and what it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future (`a`) finished first.
    Left(A),
    /// The second future (`b`) finished first.
    Right(B),
}

/// Runs `a` and `b` at once; the output is the output of whichever finishes
/// first, and the other one is dropped (cancelled) on the spot.
pub fn select<A: Future, B: Future>(a: A, b: B) -> Select<A, B> {
    Select { a: Some(a), b: Some(b) }
}

/// The future [`select`] returns.
pub struct Select<A, B> {
    /// The first future, until `select` finishes.
    a: Option<A>,
    /// The second future, until `select` finishes.
    b: Option<B>,
}

impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(&mut self) -> PollState<Self::Output> {
        todo!("poll `a`, then `b`; on the first Ready, drop both and return which one it was")
    }
}
