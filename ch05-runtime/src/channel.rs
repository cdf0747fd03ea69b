//! An async channel: many senders, one receiver, unbounded.
//!
//! Its wakes come from another task (or thread), not from the OS: `send`
//! pushes the value and, if the receiver is waiting, calls the waker it
//! left. So the reactor is not involved at all: the same `Waker` contract
//! carries any kind of event.
//!
//! ```
//! use ch05_runtime::{Runtime, channel, spawn};
//! # fn main() -> std::io::Result<()> {
//! let runtime = Runtime::new()?;
//! let total = runtime.block_on(async {
//!     let (tx, mut rx) = channel::channel();
//!     spawn(async move {
//!         for n in 1..=3 {
//!             tx.send(n).expect("the receiver is alive");
//!         }
//!     }); // tx dropped at the end: the receiver then sees the end
//!     let mut total = 0;
//!     while let Some(n) = rx.recv().await {
//!         total += n;
//!     }
//!     total
//! });
//! assert_eq!(total, 6);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use crate::coop;

/// A new channel: the sending and the receiving end.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let state = State { queue: VecDeque::new(), receiver_waker: None, receiver_alive: true };
    let shared = Arc::new(Shared { state: Mutex::new(state), senders: AtomicUsize::new(1) });
    (Sender { shared: Arc::clone(&shared) }, Receiver { shared })
}

/// What both ends share.
#[derive(Debug)]
struct Shared<T> {
    /// The queue and the receiver's side, behind one lock (held only for a
    /// push or a pop).
    state: Mutex<State<T>>,
    /// How many `Sender`s exist; at 0 the receiver sees the end. Counted
    /// outside the lock, as `Arc` counts its references: a task per value
    /// with a sender each (a fan-in) clones and drops one per task, and
    /// only the drop of the last one has anything to tell the receiver.
    senders: AtomicUsize,
}

/// The channel's contents.
#[derive(Debug)]
struct State<T> {
    /// Values sent and not yet received, oldest first.
    queue: VecDeque<T>,
    /// The receiver's waker, while it waits for a value.
    receiver_waker: Option<Waker>,
    /// Whether the `Receiver` exists; if not, sends fail.
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Wakers are called and values dropped outside the lock, so nothing
        // panics while it is held; a poisoned lock still guards a good queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending end; clone it for more senders.
pub struct Sender<T> {
    /// The channel.
    shared: Arc<Shared<T>>,
}

/// The receiving end.
pub struct Receiver<T> {
    /// The channel.
    shared: Arc<Shared<T>>,
}

/// A send to a channel whose receiver is gone; the value comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a channel whose receiver was dropped")
    }
}

impl<T: fmt::Debug> std::error::Error for SendError<T> {}

// ANCHOR: send
impl<T> Sender<T> {
    /// Sends `value` (never waits: the channel has no bound) and wakes the
    /// receiver if it is waiting.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(SendError(value));
        }
        state.queue.push_back(value);
        let waker = state.receiver_waker.take();
        drop(state);
        // Outside the lock: waking runs the waker's code (our executor's
        // `schedule`, or any other executor's), which must not wait on us.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}
// ANCHOR_END: send

// ANCHOR: recv
impl<T> Receiver<T> {
    /// The next value: `Ready(Some)` if one is queued, `Ready(None)` if the
    /// queue is empty and every sender is gone, else `Pending` with our waker
    /// left for the next `send`.
    ///
    /// A `Ready` spends a unit of the task's budget ([`crate::coop`]): a
    /// receiver fed faster than it drains yields now and then, instead of
    /// keeping its thread for as long as values keep coming.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let unit = ready!(coop::poll_proceed(cx));
        let mut state = self.shared.lock();
        if let Some(value) = state.queue.pop_front() {
            unit.spend();
            return Poll::Ready(Some(value));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            unit.spend();
            return Poll::Ready(None);
        }
        match &state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next value; `None` once every sender is dropped and
    /// the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}
// ANCHOR_END: recv

impl<T> Receiver<T> {
    /// The next value if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().queue.pop_front()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        // `Relaxed`, as in `Arc::clone`: the new sender comes from a live
        // one, so the count cannot reach 0 meanwhile, and nothing else is
        // published by this increment.
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // `AcqRel`: the receiver that reads 0 (`Acquire`) sees every value
        // this sender sent before it went.
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last sender: a waiting receiver must learn that no value will
        // come. The lock orders this with `poll_recv`: either it read the
        // count before it reached 0 and left its waker, taken here, or it
        // reads 0 and ends without waiting.
        let waker = self.shared.lock().receiver_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        let unread = std::mem::take(&mut state.queue);
        // The waker of our last `Pending`: nobody will wake it now, and
        // keeping it would keep its task (and what the task holds) alive
        // for as long as a sender lives.
        let waker = state.receiver_waker.take();
        drop(state);
        drop((unread, waker)); // values nobody will receive, and the waker, dropped outside the lock
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender { .. }")
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver { .. }")
    }
}
