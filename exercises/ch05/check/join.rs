//! The check of exercise 5.2: `join` polled by hand around two instrumented
//! futures (who is polled when, whether a finished one is polled again,
//! whether a child's wake reaches join's waker), then `join!` on chapter 5's
//! runtime with two futures that can only finish together.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use ch05_exercises::join;
use ch05_exercises::join::join;
use ch05_runtime::time::timeout;
use ch05_runtime::{Runtime, channel};
use exercise_harness::wakes::{PATIENCE, Wakes};
use exercise_harness::{Verdict, ensure};

pub fn check() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);

    // `a` is Pending twice, `b` is Ready at once.
    let (a, b) = (Steps::new('a', 2), Steps::new('b', 0));
    let (a_polls, b_polls, b_late) = (a.polls(), b.polls(), b.late());
    let mut both = pin!(join(a, b));
    let first = both.as_mut().poll(&mut cx);
    ensure!(first.is_pending(), "the first poll of join returned {first:?}, but a was not ready");
    ensure!(
        a_polls.load(Ordering::SeqCst) == 1 && b_polls.load(Ordering::SeqCst) == 1,
        "the first poll of join polled a {} time(s) and b {} time(s): poll each once",
        a_polls.load(Ordering::SeqCst),
        b_polls.load(Ordering::SeqCst)
    );
    let second = both.as_mut().poll(&mut cx);
    ensure!(second.is_pending(), "the second poll of join returned {second:?}, but a was not ready yet");
    ensure!(
        !b_late.load(Ordering::SeqCst),
        "join polled b again after b had returned Ready: keep a finished future's output and do not poll it again \
         (many futures panic when polled after Ready)"
    );
    let third = both.as_mut().poll(&mut cx);
    ensure!(third == Poll::Ready(('a', 'b')), "the third poll of join returned {third:?}; expected Ready(('a', 'b'))");

    // The children wake through join's own waker.
    let mut woken = pin!(join(Steps::waking('a'), Steps::waking('b')));
    let _ = woken.as_mut().poll(&mut cx);
    ensure!(
        wakes.count() == 2,
        "both children woke the waker they were polled with, and join's waker saw {} of those 2 wakes: give the \
         children join's own Context, so their wakes reach the task that polls join",
        wakes.count()
    );

    // On the runtime: `a` waits for what `b` sends, so only a join that
    // polls both can finish.
    let runtime = Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let together = async {
        let (tx, mut rx) = channel::channel();
        join!(async move { rx.recv().await }, async move { tx.send(7).is_ok() })
    };
    let got = runtime.block_on(timeout(PATIENCE, together)).map_err(|_| {
        format!(
            "join!(receive, send) did not finish within {} s: the receiver waits for the sender, so join must poll \
             both futures at once, not finish the first before it starts the second",
            PATIENCE.as_secs()
        )
    })?;
    ensure!(got == (Some(7), true), "join!(receive 7, send 7) returned {got:?}; expected (Some(7), true)");
    Ok(())
}

/// A future that is Pending a set number of times, then Ready with its
/// name, and notes every poll (and any poll after Ready).
struct Steps {
    /// Its output.
    name: char,
    /// Pending answers left.
    pending: usize,
    /// Whether to wake the waker when it returns Pending.
    wake: bool,
    /// Whether it has returned Ready.
    done: bool,
    /// Its polls.
    polls: Arc<AtomicUsize>,
    /// Set if it is polled after Ready.
    late: Arc<AtomicBool>,
}

impl Steps {
    fn new(name: char, pending: usize) -> Steps {
        Steps { name, pending, wake: false, done: false, polls: Arc::default(), late: Arc::default() }
    }

    /// Pending once, waking its waker; then Ready.
    fn waking(name: char) -> Steps {
        Steps { wake: true, ..Steps::new(name, 1) }
    }

    fn polls(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.polls)
    }

    fn late(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.late)
    }
}

impl Future for Steps {
    type Output = char;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<char> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.done {
            self.late.store(true, Ordering::SeqCst);
            return Poll::Pending;
        }
        if self.pending > 0 {
            self.pending -= 1;
            if self.wake {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(self.name)
    }
}
