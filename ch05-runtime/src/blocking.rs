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
//! So it goes to another thread: [`spawn_blocking`](crate::spawn_blocking)
//! queues the closure for the runtime's blocking pool and returns a
//! [`JoinHandle`]; the pool thread runs it, stores the result and wakes the
//! handle's waker, like a task's end. Threads start on demand, up to
//! `max_blocking_threads` (default 4), and exit after [`KEEP_ALIVE`] without
//! work. A job takes a number from the same sequence as tasks, and appears
//! in the trace as a row of its own ("blocking job N").
//!
//! One rule keeps jobs from waiting on each other forever: handing a job to
//! an idle thread *claims* that thread. Two jobs queued back to back while
//! one thread is idle find that one idle thread claimed by the first, so the
//! second starts a thread of its own (up to the pool's size), instead of
//! queueing behind a job that may be waiting for it.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use crate::id::TaskId;
use crate::join::{JoinError, JoinHandle, JoinSlot, Joinable};
use crate::trace::{Event, Tracer};

/// How long an idle pool thread waits for a job before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

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
    /// For the `JoinError`s and the trace.
    id: TaskId,
    /// Where the pool's job events go, if anywhere.
    tracer: Option<Tracer>,
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
        if let Some(tracer) = &self.tracer {
            let event = match &result {
                Ok(_) => Event::Ready,
                Err(e) if e.is_panic() => Event::Panicked(e.panic_message().unwrap_or_default().to_string()),
                Err(e) if e.is_aborted() => Event::Aborted,
                Err(_) => Event::ShutDown,
            };
            tracer.event(self.id, event);
        }
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
        if let Some(tracer) = &self.tracer {
            tracer.event(self.id, Event::Polled(crate::trace::thread_name()));
        }
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

    fn is_finished(&self) -> bool {
        self.join.is_finished()
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
    /// Where job events go, if anywhere.
    tracer: Option<Tracer>,
}

/// What the pool's lock protects.
struct PoolState {
    /// Jobs not started yet, oldest first.
    queue: VecDeque<Arc<dyn Job>>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Idle threads a job was handed to, that have not woken up yet: they
    /// are no longer free for the next job.
    claimed: usize,
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
            .field("claimed", &self.claimed)
            .field("closed", &self.closed)
            .finish()
    }
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, tracer: Option<Tracer>) -> BlockingPool {
        let state = PoolState { queue: VecDeque::new(), threads: 0, idle: 0, claimed: 0, started: 0, closed: false };
        let inner = PoolInner { max_threads, state: Mutex::new(state), job_available: Condvar::new(), tracer };
        BlockingPool { inner: Arc::new(inner) }
    }

    // ANCHOR: spawn_blocking
    /// Queues `f` (called at `spawned_at`), and hands it to an idle thread
    /// that no other job has claimed, or starts a thread for it if the pool
    /// may grow.
    pub(crate) fn spawn<T, F>(&self, f: F, spawned_at: &'static Location<'static>) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let id = TaskId::next();
        let tracer = self.inner.tracer.clone();
        if let Some(tracer) = &tracer {
            tracer.event(id, Event::SpawnedBlocking(spawned_at));
        }
        let task = Arc::new(BlockingTask { id, tracer, f: Mutex::new(Some(f)), join: JoinSlot::new() });
        let handle = JoinHandle::new(Arc::clone(&task) as Arc<dyn Joinable<T>>);
        let inner = &self.inner;
        let mut state = inner.lock();
        if state.closed {
            drop(state);
            task.cancel(&JoinError::shutdown);
            return handle;
        }
        state.queue.push_back(task);
        match state.hand_over(inner.max_threads) {
            HandOver::ToIdleThread => inner.job_available.notify_one(),
            HandOver::ToNewThread(name) => {
                drop(state);
                let pool = Arc::clone(inner);
                if let Err(e) = thread::Builder::new().name(name).spawn(move || pool.work()) {
                    inner.thread_failed(&e);
                }
            }
            HandOver::Queued => {}
        }
        handle
    }
    // ANCHOR_END: spawn_blocking

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

/// Who runs a job that was just queued.
#[derive(Debug, PartialEq, Eq)]
enum HandOver {
    /// An idle thread no other job has claimed: wake it.
    ToIdleThread,
    /// A new thread, with this name: start it.
    ToNewThread(String),
    /// Every thread is busy or claimed, and the pool is full: the job waits
    /// in the queue for the first thread that is done.
    Queued,
}

impl PoolState {
    /// A job was queued: decide who runs it, and count what that takes.
    /// Handing it to an idle thread claims that thread, so the next job
    /// does not count on it too.
    fn hand_over(&mut self, max_threads: usize) -> HandOver {
        if self.idle > self.claimed {
            self.claimed += 1; // that thread is this job's now
            HandOver::ToIdleThread
        } else if self.threads < max_threads {
            self.threads += 1;
            self.started += 1;
            HandOver::ToNewThread(format!("blocking-{}", self.started))
        } else {
            HandOver::Queued
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
            // Whichever idle thread wakes takes one claim (and its job) with it.
            state.claimed = state.claimed.saturating_sub(1);
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::waker::block_on;

    /// Waits (bounded) until the pool has `idle` idle threads.
    fn until_idle(pool: &BlockingPool, idle: usize) {
        for _ in 0..10_000_000 {
            if pool.inner.lock().idle == idle {
                return;
            }
            thread::yield_now(); // bounded by the loop
        }
        panic!("the pool never had {idle} idle thread(s)");
    }

    #[test]
    fn an_idle_thread_is_handed_one_job_and_the_next_starts_a_thread() {
        // One thread, idle: two jobs queued back to back, before it wakes.
        let mut state =
            PoolState { queue: VecDeque::new(), threads: 1, idle: 1, claimed: 0, started: 1, closed: false };
        assert_eq!(state.hand_over(4), HandOver::ToIdleThread);
        assert_eq!(state.hand_over(4), HandOver::ToNewThread("blocking-2".into()), "the idle thread was claimed");
        assert_eq!(state.hand_over(2), HandOver::Queued, "the pool is full");
    }

    #[test]
    fn jobs_that_wait_for_each_other_all_run_while_the_pool_may_grow() {
        const JOBS: usize = 4;
        let pool = BlockingPool::new(JOBS, None);
        // One idle thread to start from: a job ran on it and it waits for the next.
        block_on(pool.spawn(|| (), Location::caller())).expect("the warm-up job ran");
        until_idle(&pool, 1);
        // A chain: job i waits for job i + 1 to say it started. Spawned back
        // to back, so job 0 claims the idle thread and each later job must
        // start a thread of its own; none may queue behind a waiting job.
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..JOBS).map(|_| mpsc::channel::<()>()).unzip();
        let mut senders = senders.into_iter().map(Some).collect::<Vec<_>>();
        let mut handles = Vec::new();
        for (i, started) in receivers.into_iter().enumerate() {
            let tell_previous = if i > 0 { senders[i - 1].take() } else { None };
            let is_last = i == JOBS - 1;
            handles.push(pool.spawn(
                move || {
                    if let Some(previous) = tell_previous {
                        let _ = previous.send(());
                    }
                    // The last job waits for nobody; the others for the next
                    // one (bounded, so a broken pool fails instead of hanging).
                    is_last || started.recv_timeout(Duration::from_secs(10)).is_ok()
                },
                Location::caller(),
            ));
        }
        for (i, handle) in handles.into_iter().enumerate() {
            assert!(block_on(handle).expect("the job ran"), "job {i} never saw job {} start", i + 1);
        }
        pool.shut_down();
    }
}
