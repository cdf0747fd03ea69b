//! Exercise 5.2: two futures at once.
//!
//! `a.await` then `b.await` waits for one, *then* for the other. To wait for
//! both at once, one future must poll both: that is `join`, a non-leaf
//! future like chapter 4's `join_all`, but with a `Waker` this time. Write
//! its `poll`: the `join!` macro and the types are given.
//!
//! Check it: `cargo run -p ch05-exercises -- 2`

// Starter code: until `poll` uses them, the arguments and fields look
// unused. Delete this line when your code uses them.
#![allow(unused_variables, unused_mut, dead_code)]

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

impl<A: Future, B: Future> Future for Join<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        todo!("poll each child that is still running, with this cx; Ready once both have finished")
    }
}
