//! Exercise 6.1, solved: the first of two futures you only borrow.

// Nothing in this exercise needs `unsafe`: `Unpin` is what makes that so.
#![forbid(unsafe_code)]

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

// ANCHOR: first_of
impl<A, B> Future for FirstOf<'_, A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    type Output = Either<A::Output, B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `FirstOf` is `Unpin` (two references), so its pin gives a plain
        // `&mut` back, no `unsafe` needed.
        let this = self.get_mut();
        // `A: Unpin`, so `Pin::new` pins a `&mut A` with no promise to keep:
        // whether or not the caller moves `a` after we are done, nothing
        // breaks. That is why the bound is there: the caller gets `a` back.
        if let Poll::Ready(output) = Pin::new(&mut *this.a).poll(cx) {
            return Poll::Ready(Either::Left(output));
        }
        if let Poll::Ready(output) = Pin::new(&mut *this.b).poll(cx) {
            return Poll::Ready(Either::Right(output));
        }
        // Both are waiting, and both were given our `cx`: a wake from either
        // polls us again.
        Poll::Pending
    }
}
// ANCHOR_END: first_of

// ANCHOR: collect_until
/// Receives values from `progress` until the channel closes (every sender
/// is gone) or `deadline` is ready, whichever comes first; the values, in
/// order. The deadline is only borrowed: it covers the whole loop, not each
/// receive, and the caller may go on awaiting it.
pub async fn collect_until<D>(progress: &mut Receiver<u32>, deadline: &mut D) -> Vec<u32>
where
    D: Future + Unpin,
{
    let mut received = Vec::new();
    loop {
        // `recv()` is an `async fn`: its future is not `Unpin`, and
        // `first_of` would refuse a plain `&mut` to it. `pin!` pins it here,
        // in this coroutine's own state, and a `Pin<&mut _>` is an `Unpin`
        // future. A new receive each round: the old one is dropped, which
        // loses nothing (a value stays in the channel until received).
        let mut next = pin!(progress.recv());
        match first_of(&mut next, deadline).await {
            Either::Left(Some(value)) => received.push(value),
            // Closed, or out of time.
            Either::Left(None) | Either::Right(_) => return received,
        }
    }
}
// ANCHOR_END: collect_until
