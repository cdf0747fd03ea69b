//! The check of exercise 6.2: `map` around chapter 6's `ScriptedGet`, a
//! `!Unpin` future that notes where it was polled and where it was dropped,
//! polled by hand while the `Map`'s `Pin<Box<_>>` moves into a `Vec` and to
//! another thread (the box moves, the `Map` in it must not); a `Map`
//! dropped before its future finished; what the compiler says about
//! `Map`'s `Unpin`; then `map` as a task on chapter 5's multi-threaded
//! runtime.

use std::future::{Future, ready};
use std::io;
use std::task::{Context, Poll};

use ch05_runtime::{Runtime, channel, spawn};
use ch06_exercises::map::map;
use ch06_pin::projection::{Observation, Observed};
use ch06_pin::testing::{Probe, Seen};
use ch06_pin::unpin_of_value;
use exercise_harness::wakes::Wakes;
use exercise_harness::{Verdict, ensure};

use crate::drive::{poll_on_another_thread, run_patiently};

/// How many times the scripted GET is `Pending` before it is ready.
const PENDING: u32 = 2;

pub fn check() -> Verdict {
    polled_and_dropped_in_place()?;
    dropped_unfinished_in_place()?;
    unpin_only_when_the_future_is()?;
    as_a_task()
}

/// Three polls in three places of the box (here, in a `Vec`, on another
/// thread): the inner future must see one address, be dropped there as
/// soon as it is ready, and before `f` runs.
fn polled_and_dropped_in_place() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);
    let probe = Probe::new();
    let get = probe.fetch(PENDING)(0, "one");
    // `f` notes what the probe had seen when it was called.
    let seen = probe.clone();
    let mut mapped = Box::pin(map(get, move |body: io::Result<String>| (seen.events(), body.map(|b| b.len()))));

    let first = mapped.as_mut().poll(&mut cx);
    ensure!(first.is_pending(), "the inner future was Pending, and the first poll of map returned Ready");
    let mut moved = vec![mapped]; // the box moves; the `Map` in it stays
    let second = moved[0].as_mut().poll(&mut cx);
    ensure!(second.is_pending(), "the inner future was Pending, and the second poll of map returned Ready");
    let mut mapped = moved.remove(0);
    let third = poll_on_another_thread(&mut mapped, &waker)?;
    let Poll::Ready((seen_when_f_ran, length)) = third else {
        return Err("the inner future was ready at its third poll, and map's third poll returned Pending".into());
    };

    ensure!(
        matches!(length, Ok(3)),
        "map(a GET answering \"one\", |body| body.map(|b| b.len())) returned {length:?}; expected Ok(3)"
    );
    ensure!(
        wakes.count() == PENDING as usize,
        "the inner future woke its waker each of the {PENDING} times it returned Pending, and map's waker saw {} \
         wakes: poll it with map's own cx",
        wakes.count()
    );
    let (polled, dropped) = polls_and_drops(&probe.events());
    ensure!(
        polled.len() == PENDING as usize + 1,
        "the inner future was polled {} times; it is Pending {PENDING} times, then Ready: poll it once per poll of \
         map, and never again once it is ready",
        polled.len()
    );
    ensure!(
        polled.iter().all(|&at| at == polled[0]),
        "the inner future was polled at {}: it moved while pinned. The box moved between the polls, the Map in it \
         did not, so the future moved inside the Map: reach it only through the Pin your projection makes, and \
         never move it out of `future` (take, mem::replace) to poll it",
        addresses(&polled)
    );
    ensure!(
        !dropped.is_empty(),
        "the inner future finished, and map returned Ready without dropping it: drop it right away, in place \
         (future.set(None)), since it may hold a socket or a buffer for as long as the Map lives"
    );
    ensure!(
        dropped == [polled[0]],
        "the inner future was polled at {:#x} and dropped at {}: a pinned value is dropped where it is, \
         with Pin::set(None), never moved out first",
        polled[0],
        addresses(&dropped)
    );
    ensure!(
        seen_when_f_ran.iter().any(|(_, seen)| matches!(seen, Seen::Dropped(_))),
        "f ran while the finished inner future was still there: drop the future first (future.set(None)), then \
         call f"
    );
    Ok(())
}

/// A `Map` dropped while its future waits drops that future where it was
/// polled (the "loser" of a cancellation).
fn dropped_unfinished_in_place() -> Verdict {
    let waker = Wakes::new().1;
    let mut cx = Context::from_waker(&waker);
    let probe = Probe::new();
    let mut mapped = Box::pin(map(probe.fetch(PENDING)(0, "two"), |body: io::Result<String>| body.is_ok()));
    let first = mapped.as_mut().poll(&mut cx);
    ensure!(first.is_pending(), "the inner future was Pending, and the first poll of map returned {first:?}");
    drop(vec![mapped]); // moved once more, then dropped
    let (polled, dropped) = polls_and_drops(&probe.events());
    ensure!(
        polled.len() == 1 && dropped == polled,
        "a Map was polled once and dropped before its future finished: the future was polled at {} and dropped at \
         {}; expected one poll and one drop at the same address",
        addresses(&polled),
        addresses(&dropped)
    );
    Ok(())
}

/// `Map` is `Unpin` exactly when its future (and function) are: the compiler
/// answers.
fn unpin_only_when_the_future_is() -> Verdict {
    ensure!(
        !unpin_of_value!(map(async { 1 }, |x: i32| x + 1)),
        "Map<an async block, a closure> is Unpin. Then Pin::get_mut gives safe code a &mut Map, and with it a way \
         to move the pinned async block out (mem::swap, mem::replace) after it was polled: that breaks the promise \
         your projection relies on. Remove your `impl Unpin for Map`: the auto trait already makes Map Unpin \
         exactly when its fields are"
    );
    ensure!(
        unpin_of_value!(map(ready(1), |x: i32| x + 1)),
        "Map<std::future::Ready<i32>, a closure> is not Unpin, although nothing in it needs to stay in place: \
         callers could not use Pin::new on it. Do not add a PhantomPinned to Map; the auto trait gets it right"
    );
    Ok(())
}

/// `map` as a task on two worker threads, around an `async` block that
/// awaits a channel, observed by chapter 6's `Observed`.
fn as_a_task() -> Verdict {
    let runtime =
        Runtime::builder().worker_threads(2).build().map_err(|e| format!("cannot start chapter 5's runtime: {e}"))?;
    let finished = run_patiently(&runtime, "a spawned map around a receive", async {
        let (tx, mut rx) = channel::channel::<u32>();
        let doubled = spawn(map(Observed::new(async move { rx.recv().await }), |seen: Observation<Option<u32>>| {
            (seen.output.map(|value| 2 * value), seen.single_address())
        }));
        let sent = tx.send(21).is_ok();
        (sent, doubled.await)
    })?;
    let (sent, doubled) = finished;
    ensure!(sent, "the task's receiver was gone before a value could be sent to it");
    let (output, single_address) = doubled.map_err(|e| format!("the map task failed: {e}"))?;
    ensure!(
        output == Some(42),
        "spawn(map(receive, |value| value.map(|v| 2 * v))) with 21 sent returned {output:?}; expected Some(42)"
    );
    ensure!(
        single_address.is_some(),
        "the receive inside the spawned map was polled at more than one address: it moved while pinned"
    );
    Ok(())
}

/// Where a probe saw its GET polled, and where dropped, in order.
fn polls_and_drops(events: &[(String, Seen)]) -> (Vec<usize>, Vec<usize>) {
    let (mut polled, mut dropped) = (Vec::new(), Vec::new());
    for &(_, seen) in events {
        match seen {
            Seen::Polled(at) => polled.push(at),
            Seen::Dropped(at) => dropped.push(at),
        }
    }
    (polled, dropped)
}

/// Addresses as `0x…, 0x…` (or "nowhere").
fn addresses(list: &[usize]) -> String {
    if list.is_empty() {
        return "nowhere".to_string();
    }
    list.iter().map(|at| format!("{at:#x}")).collect::<Vec<_>>().join(", ")
}
