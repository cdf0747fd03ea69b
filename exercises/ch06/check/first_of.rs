//! The check of exercise 6.1: `first_of` polled by hand over two `Unpin`
//! futures that count their polls (which is polled, in which order, and
//! whether their wakes reach the waker), then `collect_until` on chapter
//! 5's single-threaded runtime: a loop of receives that ends when the
//! channel closes, or when a deadline that covers the whole loop comes.

use std::cell::Cell;
use std::future::{Future, pending, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use ch05_runtime::channel::{Sender, channel};
use ch05_runtime::{Runtime, spawn};
use ch06_exercises::first_of::{Either, collect_until, first_of};
use exercise_harness::wakes::Wakes;
use exercise_harness::{Verdict, ensure};

use crate::drive::run_patiently;

pub fn check() -> Verdict {
    a_first_then_b()?;
    until_the_channel_closes_or_the_deadline()
}

/// `first_of` by hand: `a` is polled first, `b` only while `a` waits, and
/// both get `first_of`'s own context.
fn a_first_then_b() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);

    // Both ready at once: `a` wins, and `b` is not even polled.
    let (a_polls, b_polls) = (Cell::new(0), Cell::new(0));
    let (mut a, mut b) = (countdown('a', 0, &a_polls), countdown('b', 0, &b_polls));
    let first = Pin::new(&mut first_of(&mut a, &mut b)).poll(&mut cx);
    ensure!(
        first == Poll::Ready(Either::Left('a')),
        "a and b were both ready, and first_of returned {first:?}; expected Ready(Left('a')): a is polled first"
    );
    ensure!(
        b_polls.get() == 0,
        "a was ready at its first poll, and first_of polled b as well: poll b only while a is pending. A borrowed \
         future that returns Ready has no second output to give, so b's output would be lost to its owner"
    );

    // `a` is pending twice, `b` once: `b` wins at the second poll.
    let (a_polls, b_polls) = (Cell::new(0), Cell::new(0));
    let (mut a, mut b) = (countdown('a', 2, &a_polls), countdown('b', 1, &b_polls));
    let mut both = first_of(&mut a, &mut b);
    let first = Pin::new(&mut both).poll(&mut cx);
    ensure!(first.is_pending(), "neither a nor b was ready, and the first poll of first_of returned {first:?}");
    ensure!(
        (a_polls.get(), b_polls.get()) == (1, 1),
        "the first poll of first_of polled a {} time(s) and b {} time(s): poll a once, and since it is pending, b \
         once",
        a_polls.get(),
        b_polls.get()
    );
    ensure!(
        wakes.count() == 2,
        "a and b each woke the waker they were polled with before returning Pending, and first_of's waker saw {} of \
         those 2 wakes: poll both with first_of's own cx, so that a wake from either reaches the task awaiting \
         first_of",
        wakes.count()
    );
    let second = Pin::new(&mut both).poll(&mut cx);
    ensure!(
        second == Poll::Ready(Either::Right('b')),
        "b was ready at its second poll and a was not; the second poll of first_of returned {second:?}, expected \
         Ready(Right('b'))"
    );
    Ok(())
}

/// `collect_until` on the runtime: a closed channel ends it; so does a
/// deadline while the channel stays open.
fn until_the_channel_closes_or_the_deadline() -> Verdict {
    let runtime = Runtime::new().map_err(|e| format!("cannot start chapter 5's runtime: {e}"))?;

    let (tx, mut rx) = channel();
    send_all(&tx, &[1, 2, 3])?;
    drop(tx);
    let got =
        run_patiently(&runtime, "collect_until on a closed channel", collect_until(&mut rx, &mut pending::<()>()))?;
    ensure!(
        got == [1, 2, 3],
        "three values were sent and the channel closed, with a deadline that never comes; collect_until returned \
         {got:?}, expected [1, 2, 3]: receive until recv() gives None"
    );

    // The deadline is a task's `JoinHandle` (`Unpin`: no `pin!` needed).
    // A producer sends three values, then ends the deadline task, and keeps
    // the channel open. On this single-threaded runtime nothing runs while
    // `collect_until` is polled, so the three values are there before the
    // deadline is.
    let (got, still_open) = run_patiently(&runtime, "collect_until with a deadline", async {
        let (tx, mut rx) = channel();
        let (stop_tx, mut stop_rx) = channel::<()>();
        let mut deadline = spawn(async move {
            stop_rx.recv().await;
        });
        let producer = spawn(async move {
            let sent = send_all(&tx, &[0, 1, 2]);
            drop(stop_tx); // the deadline task's recv() gives None: it ends
            (sent, tx) // the channel stays open: the sender lives on
        });
        let got = collect_until(&mut rx, &mut deadline).await;
        let still_open = producer.await.map_err(|e| format!("the producer task failed: {e}"));
        (got, still_open)
    })?;
    let (sent, _tx) = still_open?;
    sent?;
    ensure!(
        got == [0, 1, 2],
        "a producer sent 0, 1 and 2, then the deadline came, with the channel still open; collect_until returned \
         {got:?}, expected [0, 1, 2]: receive in a loop, each round first_of(the next receive, the deadline), \
         and stop when the deadline is first"
    );
    Ok(())
}

/// A future that is `Pending` `pending` times (waking its waker each time),
/// then `Ready(name)`; it counts its polls in `polls`. `Unpin`: a `poll_fn`
/// over a closure that holds only plain data and a reference.
fn countdown(name: char, mut pending: usize, polls: &Cell<usize>) -> impl Future<Output = char> + Unpin + '_ {
    poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        if pending == 0 {
            return Poll::Ready(name);
        }
        pending -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Sends `values` in order.
fn send_all(tx: &Sender<u32>, values: &[u32]) -> Verdict {
    for &value in values {
        tx.send(value).map_err(|_| format!("the channel refused {value} with its receiver still there"))?;
    }
    Ok(())
}
