//! Composing futures: [`join_all`] runs several at once, [`then`] runs one
//! after another. Both are small hand-written state machines themselves.

use crate::future::{Future, PollState};

// ANCHOR: join_all
/// Runs every future in `futures` concurrently; the output is their outputs
/// **in input order**, whatever order they finished in.
///
/// Without a `Waker`, `JoinAll` cannot know which child an event was for, so
/// each time it is polled it polls every child that has not finished (a
/// finished child is never polled again). With a `Waker` per child (the
/// tool chapter 5 brings), a join can poll only the child that was woken.
pub fn join_all<F: Future>(futures: Vec<F>) -> JoinAll<F> {
    JoinAll { children: futures.into_iter().map(Child::Running).collect(), finished: false }
}

/// The future [`join_all`] returns.
pub struct JoinAll<F: Future> {
    /// One slot per input future, in input order.
    children: Vec<Child<F>>,
    /// Set when the outputs were handed out.
    finished: bool,
}

/// One child of a [`JoinAll`].
enum Child<F: Future> {
    /// Not finished: poll it.
    Running(F),
    /// Finished: its output waits here until all are done.
    Done(F::Output),
    /// Output handed out.
    Taken,
}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(&mut self) -> PollState<Vec<F::Output>> {
        assert!(!self.finished, "JoinAll polled after it returned Ready");
        let mut all_done = true;
        for child in &mut self.children {
            if let Child::Running(future) = child {
                match future.poll() {
                    PollState::Ready(output) => *child = Child::Done(output),
                    PollState::NotReady => all_done = false,
                }
            }
        }
        if !all_done {
            return PollState::NotReady;
        }
        self.finished = true;
        let outputs = self
            .children
            .iter_mut()
            .map(|child| match std::mem::replace(child, Child::Taken) {
                Child::Done(output) => output,
                // Every child is Done here (all_done), and Taken only appears below.
                Child::Running(_) | Child::Taken => unreachable!("JoinAll: a child was not finished"),
            })
            .collect();
        PollState::Ready(outputs)
    }
}
// ANCHOR_END: join_all

// ANCHOR: then
/// Runs `first`, then `next(output of first)`, which returns the second
/// future; the output is the second one's. A chain of `then`s is what a
/// sequence of `.await`s looks like without `async`.
pub fn then<A, B, G>(first: A, next: G) -> Then<A, B, G>
where
    A: Future,
    B: Future,
    G: FnOnce(A::Output) -> B,
{
    Then::First(first, next)
}

/// The future [`then`] returns: a two-state coroutine.
#[derive(Debug)]
pub enum Then<A, B, G> {
    /// Running the first future; `G` makes the second from its output.
    First(A, G),
    /// Running the second future.
    Second(B),
    /// Finished: polling again panics.
    Done,
}

impl<A, B, G> Future for Then<A, B, G>
where
    A: Future,
    B: Future,
    G: FnOnce(A::Output) -> B,
{
    type Output = B::Output;

    fn poll(&mut self) -> PollState<B::Output> {
        loop {
            match std::mem::replace(self, Then::Done) {
                Then::First(mut first, next) => match first.poll() {
                    PollState::NotReady => {
                        *self = Then::First(first, next);
                        return PollState::NotReady;
                    }
                    // Start the second future and poll it at once.
                    PollState::Ready(output) => *self = Then::Second(next(output)),
                },
                Then::Second(mut second) => match second.poll() {
                    PollState::NotReady => {
                        *self = Then::Second(second);
                        return PollState::NotReady;
                    }
                    PollState::Ready(output) => return PollState::Ready(output),
                },
                Then::Done => panic!("Then polled after it returned Ready"),
            }
        }
    }
}
// ANCHOR_END: then
