//! Exercise 5.3, solved: a bounded channel with back-pressure.

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

    // ANCHOR: poll_send
    /// Moves the value out of `value` into the channel if there is room:
    /// `Ready(Ok)`. `Ready(Err)` with the value if the receiver is gone.
    /// Otherwise `Pending`, and this sender's waker is kept for when a
    /// receive makes room.
    pub fn poll_send(&self, cx: &mut Context<'_>, value: &mut Option<T>) -> Poll<Result<(), SendError<T>>> {
        let Some(item) = value.take() else { panic!("poll_send called again after it returned Ready") };
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Poll::Ready(Err(SendError(item)));
        }
        if state.queue.len() >= state.capacity {
            // Full: this is the back-pressure. Wait to be woken by a receive.
            *value = Some(item);
            if !state.sender_wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                state.sender_wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        state.queue.push_back(item);
        let receiver = state.receiver_waker.take();
        drop(state);
        // Outside the lock: a waker runs the executor's code, which must not
        // wait on our lock.
        if let Some(waker) = receiver {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
    // ANCHOR_END: poll_send
}

impl<T> Receiver<T> {
    // ANCHOR: poll_recv
    /// The next value: `Ready(Some)` if one is queued (and the waiting
    /// senders are woken: there is room now), `Ready(None)` if the queue is
    /// empty and every sender is gone, else `Pending` with our waker kept
    /// for the next send.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(value) = state.queue.pop_front() {
            // Wake *every* waiting sender: the first to run takes the room,
            // the others find the queue full again and wait again. Waking
            // only one is cheaper, but then a sender cancelled (dropped)
            // after its wake and before its send would swallow the wake, and
            // the others could wait forever with room in the queue.
            let senders = std::mem::take(&mut state.sender_wakers);
            drop(state);
            senders.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(value));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.receiver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
    // ANCHOR_END: poll_recv

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

// ANCHOR: drops
impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        // The last sender: a waiting receiver must learn that nothing more comes.
        let receiver = if state.senders == 0 { state.receiver_waker.take() } else { None };
        drop(state);
        if let Some(waker) = receiver {
            waker.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        let unread = std::mem::take(&mut state.queue);
        // Senders waiting for room would wait forever: wake them to fail.
        let senders = std::mem::take(&mut state.sender_wakers);
        drop(state);
        senders.into_iter().for_each(Waker::wake);
        drop(unread); // values nobody will receive, dropped outside the lock
    }
}
// ANCHOR_END: drops
