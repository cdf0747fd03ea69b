//! Exercise 4.1, solved: the first of two futures.

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

// ANCHOR: select
impl<A: Future, B: Future> Future for Select<A, B> {
    type Output = Either<A::Output, B::Output>;

    fn poll(&mut self) -> PollState<Self::Output> {
        let (Some(a), Some(b)) = (&mut self.a, &mut self.b) else {
            panic!("Select polled after it returned Ready");
        };
        // `a` first: when both are ready in the same poll, `a` wins.
        let winner = match a.poll() {
            PollState::Ready(output) => Either::Left(output),
            PollState::NotReady => match b.poll() {
                PollState::Ready(output) => Either::Right(output),
                PollState::NotReady => return PollState::NotReady,
            },
        };
        // Cancelling a future is dropping it: the loser goes now (an
        // `HttpGetFuture` closes its socket and leaves the event queue), not
        // whenever the `Select` itself is dropped.
        self.a = None;
        self.b = None;
        PollState::Ready(winner)
    }
}
// ANCHOR_END: select
