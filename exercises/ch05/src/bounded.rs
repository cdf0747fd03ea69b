//! Exercise 5.3: a bounded channel with back-pressure.
//!
//! Chapter 5's channel has no bound: a fast sender fills memory while a
//! slow receiver catches up. A bounded channel holds at most `capacity`
//! values, and `send(value).await` *waits* while it is full: the slow side
//! holds the fast side back (back-pressure). Every wake here comes from the
//! other end of the channel, a task or a thread, never from the reactor:
//! the `Waker` is the whole contract. The types, `bounded`, `send` and
//! `recv` are given; write `poll_send`, `poll_recv`, and the wakes in the
//! two `Drop`s.
//!
//! Check it: `cargo run -p ch05-exercises -- 3`

// Starter code: until your code uses them, the arguments, some imports and
// fields look unused. Delete this line when your code uses them.
#![allow(unused_variables, unused_imports, dead_code)]

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A new channel that holds at most `capacity` values (0 counts as 1): the
/// sending and the receiving end.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let state = State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        receiver_waker: None,
        sender_wakers: Vec::new(),
        senders: 1,
        receiver_alive: true,
    };
    let shared = Arc::new(Shared { state: Mutex::new(state) });
    (Sender { shared: Arc::clone(&shared) }, Receiver { shared })
}

/// What both ends share.
struct Shared<T> {
    /// Everything, behind one lock (held only for a push or a pop, never
    /// while a waker runs).
    state: Mutex<State<T>>,
}

/// The channel's contents.
struct State<T> {
    /// Values sent and not yet received, oldest first; at most `capacity`.
    queue: VecDeque<T>,
    /// The most values the queue holds.
    capacity: usize,
    /// The receiver's waker, while it waits for a value.
    receiver_waker: Option<Waker>,
    /// The wakers of senders waiting for room.
    sender_wakers: Vec<Waker>,
    /// How many `Sender`s exist; at 0 the receiver sees the end.
    senders: usize,
    /// Whether the `Receiver` exists; if not, sends fail.
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while the lock is held; a poisoned lock still
        // guards a consistent queue.
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

/// A send to a channel whose receiver is gone; the value comes back
/// (chapter 5's unbounded channel has the same error).
pub use ch05_runtime::channel::SendError;

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full; fails (giving the
    /// value back) if the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        poll_fn(|cx| self.poll_send(cx, &mut value)).await
    }

    /// Moves the value out of `value` into the channel if there is room:
    /// `Ready(Ok)`. `Ready(Err)` with the value if the receiver is gone.
    /// Otherwise `Pending`, and this sender's waker is kept for when a
    /// receive makes room.
    pub fn poll_send(&self, cx: &mut Context<'_>, value: &mut Option<T>) -> Poll<Result<(), SendError<T>>> {
        todo!("full: keep the value and the waker, Pending; room: push, wake the receiver, Ready(Ok)")
    }
}

impl<T> Receiver<T> {
    /// The next value: `Ready(Some)` if one is queued (and the waiting
    /// senders are woken: there is room now), `Ready(None)` if the queue is
    /// empty and every sender is gone, else `Pending` with our waker kept
    /// for the next send.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        todo!("a value: pop it and wake the waiting senders; none and no senders: Ready(None); else keep the waker")
    }

    /// Waits for the next value; `None` once every sender is dropped and
    /// the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.shared.lock().senders += 1;
        Sender { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        // Your code: when the last sender goes, a waiting receiver must
        // learn that nothing more comes. (No `todo!()` in a `drop`: a panic
        // there while another panic unwinds aborts the program.)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        let unread = std::mem::take(&mut state.queue);
        drop(state);
        drop(unread); // values nobody will receive, dropped outside the lock
        // Your code: senders waiting for room would wait forever; wake them.
    }
}
