//! Our own `Future` trait: the smallest interface a coroutine needs.
//!
//! A future is a task that can stop and resume. [`Future::poll`] asks it to
//! make as much progress as it can *right now*: it either finishes
//! ([`PollState::Ready`] with its output) or reaches a point where it would
//! have to wait for the outside world and returns [`PollState::NotReady`].
//! Whoever polled it (the executor) polls it again later.
//!
//! The standard library's `std::future::Future` has the same shape with two
//! additions, and this chapter leaves both out on purpose:
//!
//! - **No `Waker`.** `std`'s `poll` takes a `Context` carrying a `Waker`, the
//!   future's way to say "poll me again now". Without one, only the executor
//!   knows that something happened (an `epoll` event), and it must *guess*
//!   which future cares. Our executor keeps a side table "token → task" that
//!   leaf futures fill in through a thread-local (see [`crate::runtime`]): it
//!   works because there is exactly one executor and one event queue on the
//!   thread. A second event source (a timer thread, a channel) could not wake
//!   anyone, and `join_all` cannot tell which of its children an event was
//!   for, so it polls all of them. Chapter 5 adds the `Waker`.
//! - **No `Pin`.** `poll` takes `&mut self`, so a future may be moved between
//!   polls. That is fine as long as no state holds a reference into the
//!   future itself. An `async fn`'s states can (a borrow that lives across an
//!   `.await` points into the state machine), which is why `std`'s `poll`
//!   takes `Pin<&mut Self>`: a promise that the future does not move again.
//!   `Pin` has a chapter of its own (chapter 6).
//!
//! **Polling after `Ready` is a bug, and panics.** A future hands its output
//! out once (it moves it out); there is nothing left to return. Every future
//! in this crate panics with a message naming itself, the same choice the
//! compiler makes for `async fn` ("`async fn` resumed after completion").
//! Executors and combinators here never do it, and tests check both facts.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

// ANCHOR: future_trait
/// A task that can stop and resume: a coroutine.
pub trait Future {
    /// What the task produces when it finishes.
    type Output;

    /// Runs the task until it finishes or would have to wait.
    ///
    /// # Panics
    ///
    /// Futures in this crate panic if polled again after returning
    /// [`PollState::Ready`] (see the module docs).
    fn poll(&mut self) -> PollState<Self::Output>;
}

/// The answer to one [`Future::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollState<T> {
    /// Finished, with the output. Do not poll again.
    Ready(T),
    /// Waiting for something outside (a socket). Poll again after it happened.
    NotReady,
}
// ANCHOR_END: future_trait

/// Boxes are futures too, so an executor can hold `Box<dyn Future>`s of
/// different types in one `Vec`.
impl<F: Future + ?Sized> Future for Box<F> {
    type Output = F::Output;

    fn poll(&mut self) -> PollState<F::Output> {
        (**self).poll()
    }
}

/// A future that is ready at once with a value: the end of a
/// [`then`](crate::combinators::then) chain that computes without waiting.
#[derive(Debug)]
pub struct Ready<T>(Option<T>);

/// A future that returns `value` on its first poll.
pub fn ready<T>(value: T) -> Ready<T> {
    Ready(Some(value))
}

impl<T> Future for Ready<T> {
    type Output = T;

    fn poll(&mut self) -> PollState<T> {
        PollState::Ready(self.0.take().expect("Ready polled after it returned its value"))
    }
}

// ANCHOR: as_std
/// Lets an `async fn` `.await` one of our futures: wraps it as a
/// `std::future::Future`.
///
/// Our `NotReady` becomes `std`'s `Pending`. The `Context` (and its `Waker`)
/// is ignored: our futures have no way to use it, which is why they only run
/// under our [`Executor`](crate::runtime::Executor), which knows when to poll
/// again without being told.
#[derive(Debug)]
pub struct AsStd<F>(pub F);

impl<F: Future + Unpin> std::future::Future for AsStd<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<F::Output> {
        // Our futures never point into themselves (they are `Unpin`), so we
        // may take a plain `&mut` out of the `Pin`.
        match self.get_mut().0.poll() {
            PollState::Ready(output) => Poll::Ready(output),
            PollState::NotReady => Poll::Pending,
        }
    }
}
// ANCHOR_END: as_std

// ANCHOR: from_std
/// Runs a compiler-written `async fn` future on our executor: wraps a
/// `std::future::Future` as one of ours.
///
/// `std`'s `poll` needs a `Context`; we hand it `Waker::noop()`, a waker that
/// does nothing when woken. That is enough here because our executor does
/// not wait to be woken: it polls again after `epoll` reports an event for a
/// socket this task registered. The future is pinned in a `Box` because an
/// `async fn`'s state machine may hold references into itself (a borrow
/// alive across an `.await`), so it must stay where it was first polled.
pub struct FromStd<F: std::future::Future> {
    /// The compiler's state machine, pinned on the heap.
    future: Pin<Box<F>>,
    /// Set once it returned `Ready`, to turn a second poll into a clear panic.
    finished: bool,
}

impl<F: std::future::Future> FromStd<F> {
    /// Wraps `future` (e.g. the value an `async fn` call returns).
    pub fn new(future: F) -> FromStd<F> {
        FromStd { future: Box::pin(future), finished: false }
    }
}

impl<F: std::future::Future> Future for FromStd<F> {
    type Output = F::Output;

    fn poll(&mut self) -> PollState<F::Output> {
        assert!(!self.finished, "FromStd polled after it returned Ready");
        let mut cx = Context::from_waker(Waker::noop());
        match self.future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => {
                self.finished = true;
                PollState::Ready(output)
            }
            Poll::Pending => PollState::NotReady,
        }
    }
}
// ANCHOR_END: from_std
