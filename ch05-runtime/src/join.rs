//! [`JoinHandle`]: the spawner's end of a task, itself a future.
//!
//! `spawn` returns a `JoinHandle<T>`. Awaiting it gives the task's output
//! as `Ok(T)`, or a [`JoinError`] if the task panicked (the panic is caught:
//! the runtime and the other tasks carry on), was aborted with
//! [`JoinHandle::abort`], or was dropped because its runtime shut down.
//! Dropping the handle *detaches* the task: it keeps running, and its output
//! is dropped when it finishes.
//!
//! The task and the handle meet in a [`JoinSlot`], a small mutex-protected
//! mailbox: the task puts its result there and wakes the handle's waker; the
//! handle takes the result, or leaves its waker. A mutex is enough here: it
//! is touched twice per task (once by each side), never on every poll.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use crate::coop;
use crate::id::TaskId;

/// Why a task ended without an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinError {
    /// Which task (boxed so that `Result<T, JoinError>` stays small: it is
    /// stored in every task).
    inner: Box<Failure>,
}

/// The task and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    /// The task that failed.
    task: TaskId,
    /// How it ended.
    cause: Cause,
}

/// How a task ended without an output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cause {
    /// Its `poll` (or its future's `drop`) panicked; the panic message.
    Panicked(String),
    /// [`JoinHandle::abort`] was called before it finished.
    Aborted,
    /// Its runtime was dropped before it finished.
    Shutdown,
    /// It could not be run at all (the reason).
    Failed(String),
}

impl JoinError {
    pub(crate) fn panicked(task: TaskId, payload: &(dyn std::any::Any + Send)) -> JoinError {
        let message = if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_string()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "a panic payload that is not a string".to_string()
        };
        JoinError::new(task, Cause::Panicked(message))
    }

    pub(crate) fn aborted(task: TaskId) -> JoinError {
        JoinError::new(task, Cause::Aborted)
    }

    pub(crate) fn shutdown(task: TaskId) -> JoinError {
        JoinError::new(task, Cause::Shutdown)
    }

    pub(crate) fn failed(task: TaskId, why: String) -> JoinError {
        JoinError::new(task, Cause::Failed(why))
    }

    fn new(task: TaskId, cause: Cause) -> JoinError {
        JoinError { inner: Box::new(Failure { task, cause }) }
    }

    /// The task that failed.
    pub fn task_id(&self) -> TaskId {
        self.inner.task
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.inner.cause, Cause::Panicked(_))
    }

    /// The panic message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.inner.cause {
            Cause::Panicked(message) => Some(message),
            _ => None,
        }
    }

    /// Whether the task was aborted through its [`JoinHandle`].
    pub fn is_aborted(&self) -> bool {
        self.inner.cause == Cause::Aborted
    }

    /// Whether the task was dropped because its runtime shut down.
    pub fn is_shutdown(&self) -> bool {
        self.inner.cause == Cause::Shutdown
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.inner.task;
        match &self.inner.cause {
            Cause::Panicked(message) => write!(f, "{task} panicked: {message}"),
            Cause::Aborted => write!(f, "{task} was aborted"),
            Cause::Shutdown => write!(f, "{task} was dropped when its runtime shut down"),
            Cause::Failed(why) => write!(f, "{task} could not run: {why}"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(error: JoinError) -> std::io::Error {
        std::io::Error::other(error)
    }
}

/// Where a task's result waits for its [`JoinHandle`].
#[derive(Debug)]
pub(crate) struct JoinSlot<T> {
    /// The mailbox; see [`Slot`].
    slot: Mutex<Slot<T>>,
}

/// The states of a [`JoinSlot`].
#[derive(Debug)]
enum Slot<T> {
    /// The task has not finished. The handle's waker, once it has waited.
    Running(Option<Waker>),
    /// Finished: the result, until the handle takes it.
    Finished(Result<T, JoinError>),
    /// The handle took the result, or was dropped (detached): nothing more
    /// will be read, so a result that arrives now is dropped at once.
    Closed,
}

impl<T> JoinSlot<T> {
    pub(crate) fn new() -> JoinSlot<T> {
        JoinSlot { slot: Mutex::new(Slot::Running(None)) }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // Nothing panics while this lock is held (results are dropped after
        // it is released), so a poisoned lock still holds a consistent slot.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task's side: stores the result and wakes the handle.
    ///
    /// If the handle is gone the result comes back, for the caller to drop
    /// outside the lock (its `drop` may do anything, even panic).
    pub(crate) fn finish(&self, result: Result<T, JoinError>) -> Option<Result<T, JoinError>> {
        let mut slot = self.lock();
        match std::mem::replace(&mut *slot, Slot::Closed) {
            Slot::Running(waker) => {
                *slot = Slot::Finished(result);
                drop(slot);
                if let Some(waker) = waker {
                    waker.wake();
                }
                None
            }
            // Detached: nobody will read it. (`Finished` cannot happen: a
            // task finishes once.)
            Slot::Closed | Slot::Finished(_) => Some(result),
        }
    }

    /// The handle's side: the result if it is there, or leave the waker.
    ///
    /// # Panics
    ///
    /// If the result was already taken (a `JoinHandle` polled after it
    /// returned `Ready`), like every future polled after completion.
    pub(crate) fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        // Awaiting finished tasks one after another is always-ready work
        // too: each `Ready` spends a unit of the budget (crate::coop).
        let unit = ready!(coop::poll_proceed(cx));
        let mut slot = self.lock();
        match &mut *slot {
            Slot::Running(waker) => {
                // Keep the newest waker: the handle may have moved to another task.
                match waker {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Finished(_) => match std::mem::replace(&mut *slot, Slot::Closed) {
                Slot::Finished(result) => {
                    unit.spend();
                    Poll::Ready(result)
                }
                _ => unreachable!("matched Finished just above"),
            },
            Slot::Closed => {
                drop(slot);
                panic!("JoinHandle polled after it returned Ready")
            }
        }
    }

    /// Whether the result is there, waiting to be taken.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(*self.lock(), Slot::Finished(_))
    }

    /// The handle was dropped: close the slot, and hand back a result that
    /// was waiting, for the caller to drop outside the lock.
    pub(crate) fn detach(&self) -> Option<Result<T, JoinError>> {
        match std::mem::replace(&mut *self.lock(), Slot::Closed) {
            Slot::Finished(result) => Some(result),
            Slot::Running(_) | Slot::Closed => None,
        }
    }
}

/// What a [`JoinHandle`] needs from the task behind it: implemented by the
/// runtime's tasks and by `spawn_blocking`'s jobs, so both return the same
/// handle type.
pub(crate) trait Joinable<T>: Send + Sync {
    /// The task's id.
    fn id(&self) -> TaskId;
    /// See [`JoinSlot::poll_result`].
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    /// See [`JoinSlot::detach`].
    fn detach(&self) -> Option<Result<T, JoinError>>;
    /// See [`JoinSlot::is_finished`].
    fn is_finished(&self) -> bool;
    /// Asks the task to stop (see [`JoinHandle::abort`]).
    fn abort(self: Arc<Self>);
}

// ANCHOR: join_handle
/// An owned permission to await a spawned task's output.
///
/// A future of `Result<T, JoinError>`. Dropping it detaches the task (it
/// keeps running); [`abort`](Self::abort) stops it.
pub struct JoinHandle<T> {
    /// The task, seen only through what a handle may do with it.
    task: Arc<dyn Joinable<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Arc<dyn Joinable<T>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// The task's id (the `N` in its `[task N]` trace lines).
    pub fn id(&self) -> TaskId {
        self.task.id()
    }

    /// Whether the task has finished (its output, or error, is waiting):
    /// awaiting the handle would then be ready at once.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the task: its future is dropped instead of being polled again
    /// (if it is being polled right now, right after that poll), and this
    /// handle then returns `Err(JoinError)` with [`JoinError::is_aborted`].
    ///
    /// A task that already finished keeps its output. A `spawn_blocking` job
    /// can only be aborted before it starts: a running closure cannot be
    /// interrupted.
    pub fn abort(&self) {
        Arc::clone(&self.task).abort();
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.poll_join(cx)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // Detach. A result that was already waiting is dropped here, now,
        // rather than whenever the last reference to the task goes away.
        drop(self.task.detach());
    }
}
// ANCHOR_END: join_handle

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("task", &self.task.id()).finish()
    }
}
