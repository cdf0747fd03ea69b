//! Exercise 6.1: the first of two futures you only borrow.
//!
//! Chapter 4's `select` owned its two futures and dropped the loser. Often
//! the loser should live on: a deadline that covers a whole loop of
//! receives, not each one. `first_of(&mut a, &mut b)` polls two futures
//! you *lend* it, `a` first, until one is ready, and says which; the other
//! stays yours, where it is, to poll again later.
//!
//! Polling a future through a `&mut` that you then give back is only fine
//! if moving it afterwards is harmless: that is the bound `A: Unpin`. Then
//! `Pin::new` is all it takes, and this file needs no `unsafe` (it forbids
//! it). A future that is not `Unpin`, like every `async fn`'s, is pinned
//! first with `pin!`: a `Pin<&mut F>` is itself an `Unpin` future.
//!
//! Write `FirstOf`'s `poll`, then `collect_until`, which uses it.
//!
//! Check it: `cargo run -p ch06-exercises -- 1`

// Nothing in this exercise needs `unsafe`: `Unpin` is what makes that so.
#![forbid(unsafe_code)]
// Starter code: until your code uses them, the arguments, the fields and an
// import look unused. Delete this line when your code uses them.
#![allow(unused_variables, unused_imports, dead_code)]

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use ch05_runtime::channel::Receiver;

/// Which of two futures finished first, with its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<L, R> {
    /// The first future (`a`) finished.
    Left(L),
    /// The second future (`b`) finished; `a` had not.
    Right(R),
}

/// Polls the two futures you lend it until one finishes, `a` first, and
/// says which: `first_of(&mut receive, &mut deadline).await`. The other
/// one is left as it is, where it is, for you to poll again later.
pub fn first_of<'a, A, B>(a: &'a mut A, b: &'a mut B) -> FirstOf<'a, A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    FirstOf { a, b }
}

/// The future [`first_of`] returns. It holds two `&mut`, nothing that
/// points into itself, so it is `Unpin` by itself.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub struct FirstOf<'a, A, B> {
    /// The first future, borrowed.
    a: &'a mut A,
    /// The second future, borrowed.
    b: &'a mut B,
}

impl<A, B> Future for FirstOf<'_, A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    type Output = Either<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        todo!("poll a, and only if it is pending, b (each pinned with Pin::new); the first Ready wins")
    }
}

/// Receives values from `progress` until the channel closes (every sender
/// is gone) or `deadline` is ready, whichever comes first; the values, in
/// order. The deadline is only borrowed: it covers the whole loop, not each
/// receive, and the caller may go on awaiting it.
pub async fn collect_until<D>(progress: &mut Receiver<u32>, deadline: &mut D) -> Vec<u32>
where
    D: Future + Unpin,
{
    todo!("a loop: first_of(the next receive, pinned with pin!, and the deadline)")
}
