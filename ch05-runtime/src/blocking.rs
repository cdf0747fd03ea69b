//! `spawn_blocking`: work that cannot wait in the reactor runs on a small
//! pool of threads, and the task awaits its result.
//!
//! Chapter 3 showed `epoll` refusing a regular file (`EPERM`): a file on
//! disk is "always ready", so there is no event to wait for, and a `read`
//! of it may still block while the disk works (or return at once from the
//! page cache: "is all I/O blocking? maybe"). The same holds for DNS
//! lookups, compression, or any library call that blocks. Done inside a
//! task, such a call stops the executor's thread and every task on it.
//!
//! So it goes to another thread: [`spawn_blocking`] queues the closure for
//! the runtime's blocking pool and returns a [`JoinHandle`]; the pool thread
//! runs it, stores the result and wakes the handle's waker, like a task's
//! end. Threads start on demand, up to `max_blocking_threads` (default 4),
//! and exit after [`KEEP_ALIVE`] without work.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use crate::join::{JoinError, JoinHandle, JoinSlot, Joinable};
use crate::task::TaskId;

/// How long an idle pool thread waits for a job before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Runs `f` on the current runtime's blocking pool; the handle gives its result.
///
/// # Panics
///
/// Outside a runtime (use [`Runtime::spawn_blocking`](crate::Runtime::spawn_blocking) there).
pub fn spawn_blocking<T, F>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    crate::executor::current().blocking.spawn(f)
}

/// A queued or running blocking job, its type erased.
trait Job: Send + Sync {
    /// Runs the closure (on a pool thread) and delivers its result.
    fn run(&self);
    /// Drops the closure unrun, delivering `error(its id)` instead (an
    /// abort, a shutdown, or no thread to run it).
    fn cancel(&self, error: &dyn Fn(TaskId) -> JoinError);
}

/// A closure waiting for, or running on, a pool thread.
struct BlockingTask<T, F> {
    /// For the `JoinError`s.
    id: TaskId,
    /// The closure; taking it out (under the lock) is what decides who gets
    /// it: the pool thread that runs it, or an abort or shutdown that drops it.
    f: Mutex<Option<F>>,
    /// The result, for the `JoinHandle`.
    join: JoinSlot<T>,
}

impl<T, F> BlockingTask<T, F> {
    fn take(&self) -> Option<F> {
        self.f.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn deliver(&self, result: Result<T, JoinError>) {
        if let Some(unread) = self.join.finish(result) {
            // Detached: drop the result here, without letting a panic in its
            // `drop` take the pool thread down.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(unread)));
        }
    }
}

impl<T: Send, F: FnOnce() -> T + Send> Job for BlockingTask<T, F> {
    fn run(&self) {
        let Some(f) = self.take() else { return }; // aborted before it started
        let result = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| JoinError::panicked(self.id, &*p));
        self.deliver(result);
    }

    fn cancel(&self, error: &dyn Fn(TaskId) -> JoinError) {
        if let Some(f) = self.take() {
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(f)));
            self.deliver(Err(error(self.id)));
        }
    }
}

impl<T: Send, F: FnOnce() -> T + Send> Joinable<T> for BlockingTask<T, F> {
    fn id(&self) -> TaskId {
        self.id
    }

    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        self.join.poll_result(cx)
    }

    fn detach(&self) -> Option<Result<T, JoinError>> {
        self.join.detach()
    }

    fn abort(self: Arc<Self>) {
        // Only a job that has not started: a running closure cannot be stopped.
        self.cancel(&JoinError::aborted);
    }
}

/// The blocking pool of one runtime.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    /// Shared with the pool's threads, which outlive any one call.
    inner: Arc<PoolInner>,
}

/// What the pool and its threads share.
#[derive(Debug)]
struct PoolInner {
    /// The most threads at once.
    max_threads: usize,
    /// Jobs and thread counts.
    state: Mutex<PoolState>,
    /// Idle threads wait here for a job.
    job_available: Condvar,
}

/// What the pool's lock protects.
struct PoolState {
    /// Jobs not started yet, oldest first.
    queue: VecDeque<Arc<dyn Job>>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Numbers the threads' names (`blocking-1`, ...).
    started: usize,
    /// The runtime shut down: no more jobs.
    closed: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("queued", &self.queue.len())
            .field("threads", &self.threads)
            .field("idle", &self.idle)
            .field("closed", &self.closed)
            .finish()
    }
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize) -> BlockingPool {
        let state = PoolState { queue: VecDeque::new(), threads: 0, idle: 0, started: 0, closed: false };
        BlockingPool {
            inner: Arc::new(PoolInner { max_threads, state: Mutex::new(state), job_available: Condvar::new() }),
        }
    }

    /// Queues `f`, starting a thread for it if none is idle and the pool may grow.
    pub(crate) fn spawn<T, F>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let id = TaskId::next();
        let task = Arc::new(BlockingTask { id, f: Mutex::new(Some(f)), join: JoinSlot::new() });
        let handle = JoinHandle::new(Arc::clone(&task) as Arc<dyn Joinable<T>>);
        let inner = &self.inner;
        let mut state = inner.lock();
        if state.closed {
            drop(state);
            task.cancel(&JoinError::shutdown);
            return handle;
        }
        state.queue.push_back(task);
        if state.idle > 0 {
            inner.job_available.notify_one();
        } else if state.threads < inner.max_threads {
            state.threads += 1;
            state.started += 1;
            let name = format!("blocking-{}", state.started);
            drop(state);
            let pool = Arc::clone(inner);
            if let Err(e) = thread::Builder::new().name(name).spawn(move || pool.work()) {
                inner.thread_failed(&e);
            }
        }
        // Otherwise every thread is busy and the pool is full: the job waits
        // in the queue for the first thread that is done.
        handle
    }

    /// The runtime is shutting down: queued jobs are dropped (their handles
    /// say so), idle threads exit. A job that is running finishes on its own
    /// thread (it cannot be interrupted); its result is then dropped.
    pub(crate) fn shut_down(&self) {
        let queued: Vec<_> = {
            let mut state = self.inner.lock();
            state.closed = true;
            state.queue.drain(..).collect()
        };
        self.inner.job_available.notify_all();
        for job in queued {
            job.cancel(&JoinError::shutdown);
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Jobs run (and panic) outside the lock: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pool thread: run jobs until none comes for `KEEP_ALIVE`, or the pool closes.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run();
                state = self.lock();
                continue;
            }
            if state.closed {
                break;
            }
            state.idle += 1;
            let (next, waited) =
                self.job_available.wait_timeout(state, KEEP_ALIVE).unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }

    /// Starting a thread failed: if no thread is left to run the queue,
    /// fail the queued jobs with the reason, instead of leaving them waiting.
    fn thread_failed(&self, error: &std::io::Error) {
        let queued: Vec<_> = {
            let mut state = self.lock();
            state.threads -= 1;
            if state.threads > 0 {
                return;
            }
            state.queue.drain(..).collect()
        };
        let why = format!("no blocking thread could be started: {error}");
        for job in queued {
            job.cancel(&|id| JoinError::failed(id, why.clone()));
        }
    }
}
