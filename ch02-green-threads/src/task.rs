//! A fiber's closure and result, and the [`JoinHandle`] that waits for it.

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::ring::yield_now;
use crate::runtime::{JoinState, Runtime, with_runtime};

/// What [`JoinHandle::join_with_stats`] tells about a finished fiber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiberStats {
    /// The fiber's id.
    pub id: u64,
    /// Its stack's high-water mark in bytes, if the runtime measures them.
    pub stack_used: Option<usize>,
    /// The usable size of its stack.
    pub stack_size: usize,
}

/// Why [`JoinHandle::join`] has no value to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The fiber's closure panicked; the panic was caught at the fiber's entry.
    Panicked {
        /// The fiber's id.
        fiber: u64,
        /// The panic message.
        message: String,
    },
    /// The fiber can never finish from where `join` was called.
    Unfinishable {
        /// The fiber's id.
        fiber: u64,
        /// Why not.
        reason: &'static str,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked { fiber, message } => write!(f, "green thread {fiber} panicked: {message}"),
            JoinError::Unfinishable { fiber, reason } => write!(f, "cannot join green thread {fiber}: {reason}"),
        }
    }
}

impl std::error::Error for JoinError {}

// ANCHOR: task
/// A fiber's closure and result, shared by the fiber (as `dyn Task`) and its
/// [`JoinHandle`] (as `dyn Outcome<T>`): one allocation per spawn.
pub(crate) struct Shared<F, T> {
    /// The fiber's id (set right after spawning, before it can run).
    pub(crate) id: Cell<u64>,
    /// The closure, until the fiber starts.
    pub(crate) closure: Cell<Option<F>>,
    /// The result, from when the fiber finishes until `join` takes it.
    pub(crate) result: Cell<Option<Result<T, JoinError>>>,
    /// The fiber has finished (the result may already be taken).
    pub(crate) finished: Cell<bool>,
    /// The `JoinHandle` was dropped: nobody will take the result.
    pub(crate) detached: Cell<bool>,
    /// The fiber's stack high-water mark, once measured.
    pub(crate) stack_used: Cell<Option<usize>>,
}

/// The fiber's side of [`Shared`].
pub(crate) trait Task {
    /// Runs the closure, catching a panic, and stores the result. Returns
    /// whether it panicked.
    fn run(&self) -> bool;
    /// Records the measured stack use.
    fn record_stack_use(&self, bytes: usize);
}

impl<F: FnOnce() -> T, T> Task for Shared<F, T> {
    fn run(&self) -> bool {
        let Some(f) = self.closure.take() else { return false };
        let (result, payload) = match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => (Ok(value), None),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                eprintln!(
                    "{}",
                    ch01_os_threads::trace::line(
                        &format!("fiber {}", self.id.get()),
                        &format!("panicked: {message} (caught at its entry; the others carry on)")
                    )
                );
                (Err(JoinError::Panicked { fiber: self.id.get(), message }), Some(payload))
            }
        };
        self.finished.set(true);
        if self.detached.get() {
            drop(result); // nobody will join: drop it here, on our own stack
        } else {
            self.result.set(Some(result));
        }
        let panicked = payload.is_some();
        drop(payload); // last: if this panics, the result is already stored
        panicked
    }

    fn record_stack_use(&self, bytes: usize) {
        self.stack_used.set(Some(bytes));
    }
}
// ANCHOR_END: task

/// The [`JoinHandle`]'s side of [`Shared`].
trait Outcome<T> {
    fn take_result(&self) -> Option<Result<T, JoinError>>;
    fn is_finished(&self) -> bool;
    fn stack_used(&self) -> Option<usize>;
    fn detach(&self);
}

impl<F, T> Outcome<T> for Shared<F, T> {
    fn take_result(&self) -> Option<Result<T, JoinError>> {
        self.result.take()
    }

    fn is_finished(&self) -> bool {
        self.finished.get()
    }

    fn stack_used(&self) -> Option<usize> {
        self.stack_used.get()
    }

    fn detach(&self) {
        self.detached.set(true);
        drop(self.result.take());
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

// ANCHOR: join
/// Owned permission to wait for a fiber's result. `!Send`: it belongs to the
/// thread whose runtime runs the fiber, so this does not compile:
///
/// ```compile_fail
/// use ch02_green_threads::{Config, run, spawn};
///
/// run(Config::default(), || {
///     let handle = spawn(|| 1).unwrap();
///     // error: `Rc<..>` cannot be sent between threads safely
///     std::thread::spawn(move || handle.join());
/// })
/// .unwrap();
/// ```
pub struct JoinHandle<T> {
    /// The fiber's id.
    id: u64,
    /// The fiber's slot in the runtime (with the address of `shared`,
    /// identifies it).
    slot: usize,
    /// Its stack size, for [`FiberStats`].
    stack_size: usize,
    /// The result slot shared with the fiber.
    shared: Rc<dyn Outcome<T>>,
}

impl<T: 'static> JoinHandle<T> {
    /// The handle for the fiber in `slot` whose closure and result are `shared`.
    pub(crate) fn new<F: 'static>(id: u64, slot: usize, stack_size: usize, shared: Rc<Shared<F, T>>) -> JoinHandle<T> {
        JoinHandle { id, slot, stack_size, shared }
    }
}

impl<T> JoinHandle<T> {
    /// The fiber's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the fiber has finished (returned or panicked).
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// Waits for the fiber to finish, yielding to the others meanwhile, and
    /// returns its closure's value, or the panic that ended it.
    pub fn join(self) -> Result<T, JoinError> {
        self.join_with_stats().0
    }

    /// [`JoinHandle::join`], plus how much stack the fiber used.
    pub fn join_with_stats(self) -> (Result<T, JoinError>, FiberStats) {
        let result = loop {
            if let Some(result) = self.shared.take_result() {
                break result;
            }
            let task = Rc::as_ptr(&self.shared).cast::<()>();
            let state = with_runtime(|rt| rt.join_state(task, self.slot)).unwrap_or(JoinState::Gone);
            match state {
                JoinState::Alive => yield_now(),
                JoinState::SelfJoin => {
                    break Err(JoinError::Unfinishable { fiber: self.id, reason: "a green thread cannot join itself" });
                }
                JoinState::Gone => {
                    break Err(JoinError::Unfinishable { fiber: self.id, reason: "it ended without a result" });
                }
            }
        };
        // The fiber may be the zombie still: recycling it measures its stack.
        with_runtime(Runtime::reap);
        let stats = FiberStats { id: self.id, stack_used: self.shared.stack_used(), stack_size: self.stack_size };
        (result, stats)
    }
}
// ANCHOR_END: join

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.shared.detach();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).field("finished", &self.is_finished()).finish()
    }
}
