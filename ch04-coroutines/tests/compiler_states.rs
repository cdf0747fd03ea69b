//! The state machine the compiler writes for an `async fn` has more states
//! than its await points: besides `Suspend0`, `Suspend1`, ... (one per
//! `.await`) it has `Unresumed` (created, never polled), `Returned` and
//! `Panicked` (rustc's `CoroutineArgs::UNRESUMED`, `RETURNED` and `POISONED`,
//! printed by `-Zprint-type-sizes`). These tests see the first and the last
//! from stable Rust; `tests/state_machines.rs` already sees `Returned`.

use std::cell::Cell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Waker};

use ch04_coroutines::coroutine::FetchThree;
use ch04_coroutines::future::{Future, PollState};
use ch04_coroutines::http::Fetch;
use ch04_coroutines::log::Log;

/// Counts how often its body started running.
async fn counted(runs: Rc<Cell<u32>>) -> u32 {
    runs.set(runs.get() + 1);
    runs.get()
}

#[test]
fn an_async_fn_is_unresumed_until_its_first_poll() {
    let runs = Rc::new(Cell::new(0));
    let mut future = pin!(counted(Rc::clone(&runs)));
    // Calling it built the state machine in its `Unresumed` state (holding
    // only the argument) and ran none of the body.
    assert_eq!(runs.get(), 0);
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(future.as_mut().poll(&mut cx), std::task::Poll::Ready(1));
    assert_eq!(runs.get(), 1);
}

async fn panics_on_first_poll() -> u32 {
    panic!("boom inside the async fn");
}

#[test]
fn an_async_fn_that_panicked_is_poisoned() {
    let mut future = pin!(panics_on_first_poll());
    let mut cx = Context::from_waker(Waker::noop());
    let first = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
    let message = *first.expect_err("the body panics").downcast::<&str>().expect("a &str message");
    assert_eq!(message, "boom inside the async fn");

    // The panic left the machine in `Panicked`: polling again does not run
    // the body again, it panics with the compiler's own message.
    let again = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
    let message = *again.expect_err("a poisoned async fn panics").downcast::<&str>().expect("a &str message");
    assert!(message.contains("resumed after panicking"), "{message}");
}

/// A GET future that panics when polled.
struct Explodes;

impl Future for Explodes {
    type Output = io::Result<String>;

    fn poll(&mut self) -> PollState<io::Result<String>> {
        panic!("a leaf panicked");
    }
}

/// A [`Fetch`] whose GETs all panic.
struct Exploding;

impl Fetch for Exploding {
    type Get = Explodes;

    fn get(&self, _delay_ms: u64, _message: &str) -> Explodes {
        Explodes
    }
}

#[test]
fn our_done_state_is_both_returned_and_panicked() {
    let mut coroutine = FetchThree::new(Exploding, Log::recording());
    assert_eq!(coroutine.state_name(), "Start"); // the compiler's Unresumed
    let first = catch_unwind(AssertUnwindSafe(|| coroutine.poll()));
    assert!(first.is_err(), "the leaf's panic comes out of the coroutine's poll");
    // `poll` took the state out and left `Done` in its place before running
    // it, so a panic half-way leaves `Done`: poisoned, like `Panicked`.
    assert_eq!(coroutine.state_name(), "Done");
    assert!(catch_unwind(AssertUnwindSafe(|| coroutine.poll())).is_err(), "polling it again panics");
}
