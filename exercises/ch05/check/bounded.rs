//! The check of exercise 5.3: the channel polled by hand with counting
//! wakers (it holds `capacity` values and no more; every wait is ended by a
//! wake from the other end, also when that end goes away), then three
//! producers and a consumer on chapter 5's multi-threaded runtime.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use ch05_exercises::bounded::{SendError, bounded};
use ch05_runtime::time::timeout;
use ch05_runtime::{Runtime, spawn};
use exercise_harness::wakes::{PATIENCE, Wakes};
use exercise_harness::{Verdict, ensure};

/// Producers, values each, and the channel's capacity for the runtime part.
const PRODUCERS: usize = 3;
const VALUES: usize = 200;
const CAPACITY: usize = 4;

pub fn check() -> Verdict {
    room_and_back_pressure()?;
    a_cancelled_sender_does_not_swallow_the_wake()?;
    values_sent_before_the_end_are_all_received()?;
    the_receiver_is_woken()?;
    a_waiting_sender_learns_the_receiver_is_gone()?;
    producers_and_a_consumer()
}

/// Two senders wait for room; a receive makes room; the sender it woke is
/// dropped (cancelled, say by a `timeout`) before it runs: the other one
/// must still learn that there is room. Tried both ways round, so that it
/// does not matter which sender a receive wakes first.
fn a_cancelled_sender_does_not_swallow_the_wake() -> Verdict {
    for dropped in ["the first", "the second"] {
        let (first_wakes, first_waker) = Wakes::new();
        let (second_wakes, second_waker) = Wakes::new();
        let receiver_waker = Wakes::new().1;
        let (tx, mut rx) = bounded(1);
        let _ = pin!(tx.send(0)).poll(&mut Context::from_waker(&first_waker)); // full now
        let mut first = Box::pin(tx.send(1));
        let mut second = Box::pin(tx.send(2));
        let a = first.as_mut().poll(&mut Context::from_waker(&first_waker));
        let b = second.as_mut().poll(&mut Context::from_waker(&second_waker));
        ensure!(
            a.is_pending() && b.is_pending(),
            "two sends to a full channel returned {a:?} and {b:?}: both must wait"
        );
        let (before_first, before_second) = (first_wakes.count(), second_wakes.count());
        let got = rx.poll_recv(&mut Context::from_waker(&receiver_waker));
        ensure!(got == Poll::Ready(Some(0)), "a receive from a full channel returned {got:?}; expected Ready(Some(0))");
        let (kept_wakes, before) = if dropped == "the first" {
            drop(first);
            (&second_wakes, before_second)
        } else {
            drop(second);
            (&first_wakes, before_first)
        };
        ensure!(
            kept_wakes.count() > before,
            "two senders waited for room; a receive made room, and {dropped} sender was dropped before it ran \
             (a cancelled send). The other sender was never woken, so it waits forever although there is room: \
             a receive that wakes only one waiting sender loses the wake when that one is cancelled. Wake them \
             all (the first to run takes the room, the others wait again)"
        );
    }
    Ok(())
}

/// Values still queued when the last sender goes are received before the end.
fn values_sent_before_the_end_are_all_received() -> Verdict {
    let waker = Wakes::new().1;
    let mut cx = Context::from_waker(&waker);
    let (tx, mut rx) = bounded(2);
    for value in [1, 2] {
        let sent = pin!(tx.send(value)).poll(&mut cx);
        ensure!(sent == Poll::Ready(Ok(())), "send({value}) to a channel with room returned {sent:?}");
    }
    drop(tx);
    for expected in [Some(1), Some(2), None] {
        let got = rx.poll_recv(&mut cx);
        ensure!(
            got == Poll::Ready(expected),
            "two values were sent, then the only sender was dropped; a receive returned {got:?} where \
             Ready({expected:?}) was due: the end of the channel comes after the values queued before it"
        );
    }
    Ok(())
}

/// Two values fit, the third waits, and a receive lets it in.
fn room_and_back_pressure() -> Verdict {
    let (sender_wakes, sender_waker) = Wakes::new();
    let mut sender_cx = Context::from_waker(&sender_waker);
    let receiver_waker = Wakes::new().1;
    let mut receiver_cx = Context::from_waker(&receiver_waker);
    let (tx, mut rx) = bounded(2);
    for value in [1, 2] {
        let sent = pin!(tx.send(value)).poll(&mut sender_cx);
        ensure!(sent == Poll::Ready(Ok(())), "send({value}) to a channel with room returned {sent:?}");
    }
    let mut third = pin!(tx.send(3));
    let waiting = third.as_mut().poll(&mut sender_cx);
    ensure!(
        waiting.is_pending(),
        "the channel held 2 values, its capacity, and send(3) returned {waiting:?}: it must wait (Pending) until \
         the receiver makes room; that wait is the back-pressure"
    );
    let first = rx.poll_recv(&mut receiver_cx);
    ensure!(first == Poll::Ready(Some(1)), "the first receive returned {first:?}; expected Ready(Some(1))");
    ensure!(
        sender_wakes.count() >= 1,
        "the receiver took a value, but the sender waiting for room was not woken: it would wait forever"
    );
    let sent = third.as_mut().poll(&mut sender_cx);
    ensure!(sent == Poll::Ready(Ok(())), "woken after the receiver made room, send(3) returned {sent:?}");
    for expected in [2, 3] {
        let got = rx.poll_recv(&mut receiver_cx);
        ensure!(got == Poll::Ready(Some(expected)), "a receive returned {got:?}; expected Ready(Some({expected}))");
    }
    Ok(())
}

/// A waiting receiver is woken by a send, and by the last sender's drop.
fn the_receiver_is_woken() -> Verdict {
    let sender_waker = Wakes::new().1;
    let mut sender_cx = Context::from_waker(&sender_waker);
    let (receiver_wakes, receiver_waker) = Wakes::new();
    let mut receiver_cx = Context::from_waker(&receiver_waker);
    let (tx, mut rx) = bounded(2);
    let empty = rx.poll_recv(&mut receiver_cx);
    ensure!(empty.is_pending(), "a receive from an empty channel returned {empty:?}; it should wait (Pending)");
    let before = receiver_wakes.count();
    let _ = pin!(tx.send(4)).poll(&mut sender_cx);
    ensure!(
        receiver_wakes.count() > before,
        "a value was sent while the receiver waited, and the receiver was not woken"
    );
    let got = rx.poll_recv(&mut receiver_cx);
    ensure!(got == Poll::Ready(Some(4)), "a receive returned {got:?}; expected Ready(Some(4))");
    let _ = rx.poll_recv(&mut receiver_cx); // waits again
    let before = receiver_wakes.count();
    drop(tx);
    ensure!(
        receiver_wakes.count() > before,
        "the last sender was dropped while the receiver waited, and the receiver was not woken: it would wait \
         forever for a value that cannot come"
    );
    let end = rx.poll_recv(&mut receiver_cx);
    ensure!(end == Poll::Ready(None), "with every sender gone and nothing queued, a receive returned {end:?}");
    Ok(())
}

/// A sender waiting for room is woken, and fails, when the receiver goes.
fn a_waiting_sender_learns_the_receiver_is_gone() -> Verdict {
    let (sender_wakes, sender_waker) = Wakes::new();
    let mut sender_cx = Context::from_waker(&sender_waker);
    let (tx, rx) = bounded(1);
    let _ = pin!(tx.send(1)).poll(&mut sender_cx);
    let mut blocked = pin!(tx.send(2));
    let _ = blocked.as_mut().poll(&mut sender_cx);
    let before = sender_wakes.count();
    drop(rx);
    ensure!(
        sender_wakes.count() > before,
        "the receiver was dropped while a sender waited for room, and the sender was not woken: it would wait \
         forever for room that cannot come"
    );
    let failed = blocked.as_mut().poll(&mut sender_cx);
    ensure!(
        failed == Poll::Ready(Err(SendError(2))),
        "a send to a channel whose receiver is gone returned {failed:?}; expected Ready(Err(SendError(2))), the \
         value given back"
    );
    Ok(())
}

/// Three producers and a consumer on two worker threads; each producer's
/// values must arrive complete and in order.
fn producers_and_a_consumer() -> Verdict {
    let runtime = Runtime::builder().worker_threads(2).build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let run = async {
        let (tx, mut rx) = bounded(CAPACITY);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let tx = tx.clone();
                spawn(async move {
                    for value in 0..VALUES {
                        tx.send((producer, value)).await?;
                    }
                    Ok::<(), SendError<(usize, usize)>>(())
                })
            })
            .collect();
        drop(tx);
        let mut next = [0; PRODUCERS];
        while let Some((producer, value)) = rx.recv().await {
            if value != next[producer] {
                return Err(format!("from producer {producer}, value {value} came where {} was due", next[producer]));
            }
            next[producer] += 1;
        }
        for producer in producers {
            producer.await.map_err(|e| e.to_string())?.map_err(|e| format!("a send failed: {e}"))?;
        }
        Ok(next)
    };
    let counts = runtime.block_on(timeout(PATIENCE, run)).map_err(|_| {
        format!(
            "{PRODUCERS} producers sending {VALUES} values each through a channel of {CAPACITY}, and one consumer, \
             on two worker threads, were still waiting after {} s: a wake-up was lost (a sender not woken when room \
             came, or the receiver not woken when a value or the end came)",
            PATIENCE.as_secs()
        )
    })??;
    ensure!(
        counts == [VALUES; PRODUCERS],
        "the consumer saw the end of the channel after {counts:?} values per producer; each sent {VALUES}"
    );
    Ok(())
}
