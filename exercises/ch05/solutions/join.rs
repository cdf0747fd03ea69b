//! Exercise 5.2, solved: two futures at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs `a` and `b` at once and returns both outputs, `a`'s first:
/// `let (x, y) = join(a, b).await;`.
pub fn join<A: Future, B: Future>(a: A, b: B) -> Join<A, B> {
    Join { a: Child::Running(Box::pin(a)), b: Child::Running(Box::pin(b)) }
}

/// `join!(a, b)`: awaits both futures at once, inside an `async` block or
/// function, and gives both outputs.
#[macro_export]
macro_rules! join {
    ($a:expr, $b:expr $(,)?) => {
        $crate::join::join($a, $b).await
    };
}

/// The future [`join()`] returns.
pub struct Join<A: Future, B: Future> {
    /// The first future, or its output.
    a: Child<A>,
    /// The second future, or its output.
    b: Child<B>,
}

// `Join` may move even while pinned: the futures themselves sit pinned in
// their boxes, and nothing ever pins the outputs. (Without this line, `Join`
// would be `Unpin` only if both outputs were, and `poll` could not reach
// its fields through `Pin<&mut Self>`; chapter 6 is about exactly this.)
impl<A: Future, B: Future> Unpin for Join<A, B> {}

/// One of the two futures of a [`Join`].
pub enum Child<F: Future> {
    /// Not finished. Pinned in a box: an `async` block's state machine must
    /// not move once polled, and the box lets `Join` itself move freely
    /// (chapter 6 shows how to do without it).
    Running(Pin<Box<F>>),
    /// Finished: its output waits here for the other one.
    Done(F::Output),
    /// The output was handed out.
    Taken,
}

// ANCHOR: join
impl<A: Future, B: Future> Future for Join<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both children get *our* context: whichever of them is woken wakes
        // the task that polls this Join, and then both are looked at again
        // (a finished one is not polled: it only holds its output).
        let a_done = self.a.poll_child(cx);
        let b_done = self.b.poll_child(cx);
        if !(a_done && b_done) {
            return Poll::Pending;
        }
        match (self.a.take(), self.b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            _ => panic!("Join polled after it returned Ready"),
        }
    }
}

impl<F: Future> Child<F> {
    /// Polls the future if it is still running; whether it has finished.
    fn poll_child(&mut self, cx: &mut Context<'_>) -> bool {
        match self {
            Child::Running(future) => match future.as_mut().poll(cx) {
                Poll::Ready(output) => {
                    *self = Child::Done(output);
                    true
                }
                Poll::Pending => false,
            },
            Child::Done(_) | Child::Taken => true,
        }
    }

    /// The output, once; `None` if it was taken or never came.
    fn take(&mut self) -> Option<F::Output> {
        match std::mem::replace(self, Child::Taken) {
            Child::Done(output) => Some(output),
            _ => None,
        }
    }
}
// ANCHOR_END: join
