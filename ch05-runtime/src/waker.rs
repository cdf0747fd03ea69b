//! The `Waker`, first written out by hand, then through `std::task::Wake`.
//!
//! Chapter 4's executor had to guess which task an event was for: it kept a
//! side table "token → task". `std`'s answer is the [`Waker`]: when a future
//! returns `Pending`, it keeps the waker it was polled with, and whoever sees
//! the event (the reactor, a timer, another task, another thread) calls
//! `wake()` on it. The waker knows how to put *its* task back in *its*
//! executor's queue; the one who wakes needs to know nothing about either.
//!
//! A `Waker` is a data pointer plus a table of four functions, the
//! [`RawWakerVTable`]: `clone`, `wake` (consumes the waker), `wake_by_ref`
//! (does not), and `drop`. `std` calls them; the executor writes them. Here
//! they are for the simplest thing an executor can be woken by: a [`Signal`],
//! a flag plus the thread to unpark, which is what a `block_on` waits on.
//!
//! - [`waker_by_hand`] builds the waker from the four functions written out,
//!   each with the reason it is sound.
//! - `impl Wake for Signal` gets the same waker from `std`: implement `wake`
//!   on an `Arc`'d type, and `Waker::from(arc)` writes the four functions for
//!   you, exactly as [`waker_by_hand`] does.
//! - [`block_on`] is the smallest executor there is: poll, park until woken,
//!   poll again. It uses the hand-written waker, and it runs every leaf
//!   future of this crate (sockets, timers), because those only ever talk to
//!   the [`Waker`] they are given, never to an executor.
//!
//! The runtime's tasks ([`crate::task`]) use `Wake`: the vtable `std`
//! generates is the one we would write, with no `unsafe` of ours in it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::thread::{self, Thread};

/// A flag saying "poll me again", and the thread that waits for it.
///
/// Waking sets the flag and unparks the thread; the thread checks the flag
/// before it parks, so a wake that arrives just before `park` is not lost
/// (`unpark` before `park` makes the next `park` return at once).
#[derive(Debug)]
pub struct Signal {
    /// Set by a wake, cleared by [`Signal::take`].
    woken: AtomicBool,
    /// The thread that polls the future and parks in between.
    thread: Thread,
}

impl Signal {
    /// A signal for the calling thread, already set (so the first poll happens).
    pub fn for_current_thread() -> Arc<Signal> {
        Arc::new(Signal { woken: AtomicBool::new(true), thread: thread::current() })
    }

    /// Sets the flag and unparks the waiting thread.
    pub fn notify(&self) {
        // Release: what the waker did before waking is visible to the thread
        // that sees the flag (with its Acquire in `take`).
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Clears the flag; `true` if it was set (someone woke us since the last look).
    pub fn take(&self) -> bool {
        self.woken.swap(false, Ordering::Acquire)
    }

    /// Whether the flag is set, without clearing it.
    pub fn is_set(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Parks until the flag is set, then clears it.
    pub fn wait(&self) {
        // `park` may also return for no reason (a spurious wakeup), so look
        // at the flag every time.
        while !self.take() {
            thread::park();
        }
    }
}

// ANCHOR: vtable
/// The four functions behind a `Waker` for an `Arc<Signal>`, written out.
///
/// The waker's data pointer is what `Arc::into_raw` returned: it owns one
/// strong count of the `Arc`. Every function below keeps that bookkeeping
/// exact: one count per live waker, no more, no less.
static SIGNAL_VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// Builds a `Waker` for `signal` from [`SIGNAL_VTABLE`].
pub fn waker_by_hand(signal: Arc<Signal>) -> Waker {
    let data = Arc::into_raw(signal).cast::<()>();
    // SAFETY: `data` comes from `Arc::into_raw` and carries one strong count,
    // which this waker now owns; the vtable's functions below all expect
    // exactly such a pointer and respect that count (see each one).
    unsafe { Waker::from_raw(RawWaker::new(data, &SIGNAL_VTABLE)) }
}

/// `waker.clone()`: one more waker, so one more strong count.
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::<Signal>::into_raw` (only `waker_by_hand`
    // and this function make these wakers), and the waker being cloned still
    // owns its count, so the `Arc` is alive.
    unsafe { Arc::increment_strong_count(data.cast::<Signal>()) };
    RawWaker::new(data, &SIGNAL_VTABLE)
}

/// `waker.wake()`: consumes the waker, so its count goes with it.
unsafe fn wake(data: *const ()) {
    // SAFETY: `data` came from `Arc::into_raw` and this waker owns one count;
    // `from_raw` takes that count back, and dropping the `Arc` at the end of
    // this function releases it, as consuming the waker must.
    let signal = unsafe { Arc::from_raw(data.cast::<Signal>()) };
    signal.notify();
}

/// `waker.wake_by_ref()`: the waker lives on, so its count stays.
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker we are called through owns a count, so the `Signal`
    // is alive for the duration of this call; we only borrow it.
    let signal = unsafe { &*data.cast::<Signal>() };
    signal.notify();
}

/// `drop(waker)`: gives its count back.
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: as in `wake`: this waker owns one count, and drops it here.
    drop(unsafe { Arc::from_raw(data.cast::<Signal>()) });
}
// ANCHOR_END: vtable

// ANCHOR: wake_trait
/// The same waker, written by `std`: `Waker::from(Arc<Signal>)` builds a
/// vtable whose clone / wake / wake_by_ref / drop do what the functions above
/// do, and calls these two methods to do the waking.
impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify();
    }
}
// ANCHOR_END: wake_trait

// ANCHOR: block_on
/// The smallest executor: runs one future to completion on this thread.
///
/// Poll; if the future is not done, park until its waker is called; poll
/// again. Nothing here knows about sockets or timers: a leaf future that
/// waits on the reactor hands the reactor this waker, and the reactor's
/// thread calls it. That is the whole contract between the two.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let signal = Signal::for_current_thread();
    let waker = waker_by_hand(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    // `pin!` pins the future on this stack frame: it will not move again
    // before it is dropped at the end of this function (chapter 6).
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        signal.wait();
    }
}
// ANCHOR_END: block_on

#[cfg(test)]
mod tests {
    use super::*;

    /// Both wakers keep the `Arc` count exact through clone, wake, wake_by_ref and drop.
    #[test]
    fn both_wakers_count_references_exactly() {
        let by_hand: fn(Arc<Signal>) -> Waker = waker_by_hand;
        let by_std: fn(Arc<Signal>) -> Waker = Waker::from;
        for make in [by_hand, by_std] {
            let signal = Signal::for_current_thread();
            assert!(signal.take());
            let waker = make(Arc::clone(&signal));
            assert_eq!(Arc::strong_count(&signal), 2);
            let copy = waker.clone();
            assert_eq!(Arc::strong_count(&signal), 3);
            copy.wake_by_ref();
            assert!(signal.take(), "wake_by_ref sets the flag");
            assert_eq!(Arc::strong_count(&signal), 3, "wake_by_ref keeps the waker");
            copy.wake();
            assert!(signal.take(), "wake sets the flag");
            assert_eq!(Arc::strong_count(&signal), 2, "wake consumes the waker");
            assert!(waker.will_wake(&waker.clone()));
            drop(waker);
            assert_eq!(Arc::strong_count(&signal), 1, "drop gives the count back");
        }
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait() {
        let signal = Signal::for_current_thread();
        assert!(signal.take());
        let waker = waker_by_hand(Arc::clone(&signal));
        let other = thread::spawn(move || waker.wake());
        signal.wait(); // returns only once the other thread woke us
        other.join().unwrap();
        assert!(!signal.is_set());
    }
}
