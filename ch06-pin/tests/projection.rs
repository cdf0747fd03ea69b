//! Pin projection: `Observed` pins its inner future structurally, so the
//! inner future is polled at one address, however the outer one is held;
//! and `Unpin` is what the compiler says it is.

use std::future::Future;
use std::io;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ch05_runtime::time::Sleep;
use ch05_runtime::{JoinHandle, Runtime, spawn};
use ch06_pin::coroutine::{FetchThreeInto, fetch_three_into_async};
use ch06_pin::log::Log;
use ch06_pin::moving::SelfRef;
use ch06_pin::pinned::PinnedSelfRef;
use ch06_pin::projection::Observed;
use ch06_pin::testing::{ScriptedGet, scripted};
use ch06_pin::{unpin_of_type, unpin_of_value};

#[test]
fn the_pinned_field_keeps_its_address_across_polls_while_the_box_moves() {
    let mut outer = Box::pin(Observed::new(fetch_three_into_async(scripted(1), Log::silent())));
    let mut cx = Context::from_waker(Waker::noop());
    let observation = loop {
        if let Poll::Ready(observation) = outer.as_mut().poll(&mut cx) {
            break observation;
        }
        let mut moved = vec![outer]; // move the box between polls
        outer = moved.remove(0);
    };
    assert_eq!(observation.polls(), 4);
    assert!(observation.single_address().is_some(), "polled in one place: {:?}", observation.seen_at);
    assert_eq!(observation.output.expect("no error"), "one one-two three");
}

#[test]
fn a_task_is_polled_at_one_address_on_whichever_worker_runs_it() -> io::Result<()> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let observation = runtime
        .block_on(async { spawn(Observed::new(FetchThreeInto::new(scripted(5), Log::silent()))).await })
        .expect("no panic");
    assert_eq!(observation.polls(), 3 * 5 + 1);
    assert!(observation.single_address().is_some(), "{:?}", observation.seen_at);
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "a real timer (the reactor's epoll): Miri runs only the tests without it")]
fn block_on_polls_its_future_at_one_address_too() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let observation = runtime.block_on(Observed::new(ch05_runtime::time::sleep(Duration::from_millis(1))));
    assert!(observation.polls() >= 2, "Pending at least once, then Ready: {:?}", observation.seen_at);
    assert!(observation.single_address().is_some());
    Ok(())
}

#[test]
fn an_unpin_future_may_move_between_polls_and_the_observation_shows_it() {
    // `Observed<CountTo>` is `Unpin`, so safe code may move it between polls
    // (`Pin::new`, a move into a box, `Pin::new` again): the observation must
    // then report two places, or "one address" would be a check that cannot fail.
    let mut cx = Context::from_waker(Waker::noop());
    let mut here = Observed::new(CountTo(2));
    assert!(Pin::new(&mut here).poll(&mut cx).is_pending());
    let mut there = Box::new(here); // moved
    let Poll::Ready(observation) = Pin::new(&mut *there).poll(&mut cx) else { panic!("ready at the 2nd poll") };
    assert_eq!(observation.polls(), 2);
    assert_eq!(observation.single_address(), None, "moved between the two polls: {:?}", observation.seen_at);
}

/// `Unpin`, ready at its `n`th poll.
struct CountTo(u32);

impl Future for CountTo {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.0 -= 1;
        if self.0 == 0 { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// Compiles only for `Unpin` types: the plain bound, to check the macros by.
fn assert_unpin<T: Unpin + ?Sized>() {}

#[test]
fn the_unpin_answers_match_the_compilers_bounds() {
    assert_unpin::<SelfRef>();
    assert_unpin::<Sleep>();
    assert_unpin::<JoinHandle<u32>>();
    assert_unpin::<Observed<Sleep>>();
    assert!(unpin_of_type!(SelfRef));
    assert!(unpin_of_type!(Sleep));
    assert!(unpin_of_type!(JoinHandle<u32>));
    assert!(unpin_of_type!(Observed<Sleep>));
    assert!(unpin_of_type!(Box<PinnedSelfRef>), "a Box is a pointer: Unpin whatever it holds");

    // The other answers: no `assert_unpin` would compile for these (see the
    // compile_fail doc tests in `forbidden`).
    assert!(!unpin_of_type!(PhantomPinned));
    assert!(!unpin_of_type!(PinnedSelfRef));
    assert!(!unpin_of_type!(ScriptedGet));
    assert!(!unpin_of_type!(Observed<ScriptedGet>), "not Unpin because its structurally pinned field is not");
    assert!(!unpin_of_value!(FetchThreeInto::new(scripted(0), Log::silent())));
    assert!(!unpin_of_value!(fetch_three_into_async(scripted(0), Log::silent())));
    assert!(unpin_of_value!(Box::pin(fetch_three_into_async(scripted(0), Log::silent()))));
}
