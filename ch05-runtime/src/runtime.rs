//! [`Runtime`] and its [`Builder`]: which executor, which I/O driver, how
//! tasks are polled, and what dropping a runtime does. The executors' cycles
//! are in [`crate::current_thread`] and [`crate::multi_thread`].

use std::future::Future;
use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::blocking::BlockingPool;
use crate::coop::DEFAULT_BUDGET;
use crate::current_thread::{self, DRIVER_INTERVAL, INJECTOR_INTERVAL};
use crate::join::JoinHandle;
use crate::multi_thread::{self, worker};
use crate::park::Parker;
use crate::reactor::Reactor;
pub use crate::scheduler::Flavor;
use crate::scheduler::{self, Intervals, Shared};
use crate::task::PollSettings;
use crate::trace::Tracer;

/// Default for [`Builder::slow_poll_threshold`]: 10 ms, in debug builds.
///
/// Go's scheduler preempts a goroutine that has run for 10 ms; a poll that
/// long keeps every other task on its thread waiting just as long, which is
/// worth a line on stderr while you develop. Off in release builds, like
/// integer overflow checks: timing every poll costs two clock reads
/// (some 50 ns here: `bench`'s yield rows), more than a whole yield.
pub const DEFAULT_SLOW_POLL: Option<Duration> =
    if cfg!(debug_assertions) { Some(Duration::from_millis(10)) } else { None };

/// Who waits in `epoll_wait` for a runtime's sockets and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoDriver {
    /// The process's reactor thread (the default, and the book's design):
    /// one reactor for every executor, so any executor can drive any leaf
    /// future; the price is that each wake crosses from the reactor's thread
    /// to the executor's.
    #[default]
    ReactorThread,
    /// The runtime owns a reactor, and its thread waits in that reactor's
    /// `epoll_wait` itself whenever it has no task to run (tokio's design).
    /// Wakes from I/O and timers then happen on the thread that runs the
    /// tasks: no second thread, no hop. Single-threaded runtimes only; a
    /// socket or timer created here stays with this runtime's reactor, so it
    /// only makes progress inside this runtime's `block_on`.
    ExecutorThread,
}

/// Sets a [`Runtime`] up: `Runtime::builder().worker_threads(2).build()`.
#[derive(Debug, Clone)]
pub struct Builder {
    /// `None`: single-threaded. `Some(n)`: `n` workers.
    worker_threads: Option<usize>,
    /// The most threads `spawn_blocking` may start at once.
    max_blocking_threads: usize,
    /// Where task events go, if anywhere.
    tracer: Option<Tracer>,
    /// Print `[executor]` lines when the single-threaded loop parks and unparks.
    log_cycle: bool,
    /// Who waits for this runtime's I/O.
    io_driver: IoDriver,
    /// Units of cooperative budget per poll; `None`: no budget.
    budget: Option<u32>,
    /// Report polls longer than this.
    slow_poll: Option<Duration>,
    /// The single-threaded loop's fairness intervals.
    intervals: Intervals,
}

impl Builder {
    /// Tasks run on `n` worker threads (the multi-threaded executor).
    /// Leave it out for the single-threaded one.
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.worker_threads = Some(n);
        self
    }

    /// The most threads [`spawn_blocking`](crate::spawn_blocking) jobs may
    /// occupy at once (default 4); more jobs wait in a queue.
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n;
        self
    }

    /// Report every task's steps to `tracer` (see [`crate::trace`]).
    pub fn trace(mut self, tracer: Tracer) -> Builder {
        self.tracer = Some(tracer);
        self
    }

    /// Print an `[executor]` line each time the single-threaded executor
    /// parks (nothing to run) and wakes up.
    pub fn log_cycle(mut self, on: bool) -> Builder {
        self.log_cycle = on;
        self
    }

    /// Who waits in `epoll_wait` for this runtime's sockets and timers
    /// (default [`IoDriver::ReactorThread`]).
    pub fn io_driver(mut self, driver: IoDriver) -> Builder {
        self.io_driver = driver;
        self
    }

    /// Units of cooperative budget each poll of a task gets (default
    /// [`DEFAULT_BUDGET`], 128); `None` turns the budget off, so that a task
    /// whose leaf futures are always ready keeps its thread for as long as
    /// they are (see [`crate::coop`]: the demo shows what that does to the
    /// other tasks).
    pub fn coop_budget(mut self, units: Option<u32>) -> Builder {
        self.budget = units;
        self
    }

    /// Report every poll that takes longer than `threshold` (default
    /// [`DEFAULT_SLOW_POLL`]: 10 ms in debug builds, off in release ones):
    /// on stderr once per task, with the task's id, where it was spawned and
    /// how long it ran; in the trace every time. `None` stops timing polls.
    pub fn slow_poll_threshold(mut self, threshold: Option<Duration>) -> Builder {
        self.slow_poll = threshold;
        self
    }

    /// Single-threaded: every `n` polls, take the tasks other threads woke
    /// before the local ones (default [`INJECTOR_INTERVAL`], 31).
    pub fn injector_interval(mut self, n: u32) -> Builder {
        self.intervals.injector = n;
        self
    }

    /// Single-threaded: after `n` polls without a wait, turn the runtime's
    /// own reactor without sleeping, and poll `block_on`'s future if it was
    /// woken (default [`DRIVER_INTERVAL`], 61).
    pub fn driver_interval(mut self, n: u32) -> Builder {
        self.intervals.driver = n;
        self
    }

    /// Starts the runtime (and its worker threads, if any).
    pub fn build(self) -> io::Result<Runtime> {
        let flavor = match self.worker_threads {
            None => Flavor::CurrentThread,
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "worker_threads must be at least 1 (leave it out for the single-threaded executor)",
                ));
            }
            Some(n) => Flavor::MultiThread(n),
        };
        if self.max_blocking_threads == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "max_blocking_threads must be at least 1"));
        }
        if self.intervals.injector == 0 || self.intervals.driver == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the injector and driver intervals must be at least 1",
            ));
        }
        if self.budget == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a budget of 0 units would never let a leaf future finish (use coop_budget(None) to turn it off)",
            ));
        }
        let parker = match (self.io_driver, flavor) {
            (IoDriver::ReactorThread, _) => Parker::Thread,
            (IoDriver::ExecutorThread, Flavor::CurrentThread) => {
                let (reactor, driver) = Reactor::owned()?;
                Parker::Reactor { reactor, driver }
            }
            (IoDriver::ExecutorThread, Flavor::MultiThread(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "IoDriver::ExecutorThread is for the single-threaded executor (leave out worker_threads)",
                ));
            }
        };
        let settings = PollSettings { budget: self.budget, slow_poll: self.slow_poll, tracer: self.tracer.clone() };
        let blocking = BlockingPool::new(self.max_blocking_threads, self.tracer);
        let shared = Arc::new(Shared::new(flavor, settings, self.intervals, blocking, parker, self.log_cycle));
        let mut runtime = Runtime { shared, workers: Vec::new() };
        if let Flavor::MultiThread(n) = flavor {
            for index in 1..=n {
                let shared = Arc::clone(&runtime.shared);
                let worker = thread::Builder::new().name(format!("worker-{index}")).spawn(move || worker(shared))?;
                runtime.workers.push(worker); // on an error, dropping `runtime` stops those already started
            }
        }
        Ok(runtime)
    }
}

/// An executor with its queues, its tasks and its `spawn_blocking` pool.
///
/// Dropping it drops every task that has not finished (their `JoinHandle`s
/// return an error that says so), which drops their sockets and timers,
/// which deregisters them from the reactor.
#[derive(Debug)]
pub struct Runtime {
    /// What tasks, wakers and workers share.
    pub(crate) shared: Arc<Shared>,
    /// The multi-threaded executor's worker threads.
    workers: Vec<thread::JoinHandle<()>>,
}

impl Runtime {
    /// A single-threaded runtime (tasks run inside [`block_on`](Self::block_on)).
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// A [`Builder`] for other settings.
    pub fn builder() -> Builder {
        Builder {
            worker_threads: None,
            max_blocking_threads: 4,
            tracer: None,
            log_cycle: false,
            io_driver: IoDriver::ReactorThread,
            budget: Some(DEFAULT_BUDGET),
            slow_poll: DEFAULT_SLOW_POLL,
            intervals: Intervals { injector: INJECTOR_INTERVAL, driver: DRIVER_INTERVAL },
        }
    }

    /// Single- or multi-threaded.
    pub fn flavor(&self) -> Flavor {
        self.shared.flavor
    }

    /// Runs `future` to completion on this thread and returns its output.
    /// Single-threaded: the spawned tasks run here too, meanwhile.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (a task, or another `block_on`), or
    /// from two threads at once on a single-threaded runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self.shared.flavor {
            Flavor::CurrentThread => current_thread::block_on(&self.shared, future),
            Flavor::MultiThread(_) => multi_thread::block_on(&self.shared, future),
        }
    }

    /// Spawns a task; it starts at the runtime's next chance (for the
    /// single-threaded one: inside the next `block_on`).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future, Location::caller())
    }

    /// Runs `f` on this runtime's blocking pool (see [`crate::blocking`]).
    #[track_caller]
    pub fn spawn_blocking<T, F>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.blocking.spawn(f, Location::caller())
    }

    /// How many spawned tasks have not finished yet.
    pub fn unfinished_tasks(&self) -> usize {
        self.shared.unfinished()
    }

    /// How many sockets are registered with the reactor this runtime's
    /// tasks use (its own, or the process's: then other runtimes' too).
    pub fn registered_sources(&self) -> usize {
        self.shared.reactor.as_deref().map_or_else(crate::reactor::registered_sources, Reactor::sources_len)
    }

    /// How many timers are pending in the reactor this runtime's tasks use.
    pub fn pending_timers(&self) -> usize {
        self.shared.reactor.as_deref().map_or_else(crate::reactor::pending_timers, Reactor::timers_len)
    }
}

// ANCHOR: shutdown
impl Drop for Runtime {
    fn drop(&mut self) {
        // 1. Close the injector: workers stop once they finish their current
        //    poll, a wake from now on is dropped instead of queued, and a
        //    task spawned from now on is born finished.
        //    A worker cannot wait for itself: if this drop runs on one of
        //    the workers (a task dropped the runtime it runs on), that worker
        //    is not joined; it finishes the poll it is in, finds the injector
        //    closed and ends, like the others, just without anyone waiting.
        let queued = self.shared.close_injector();
        let this_thread = thread::current().id();
        for worker in self.workers.drain(..) {
            if worker.thread().id() != this_thread {
                let _ = worker.join();
            }
        }
        // 2. Drop every unfinished task's future. A task that never waited
        //    is in the queue; a task that waits is referenced only by wakers
        //    (held by the reactor, a channel, a timer), so the list of tasks
        //    that have waited is the only way to reach it. Dropping a future
        //    drops its sockets and timers, and they deregister themselves.
        for task in queued.into_iter().chain(self.shared.drain_task_list()) {
            task.shut_down(); // nothing happens to a task that already finished
        }
        // 3. The blocking pool: queued jobs are dropped, idle threads exit.
        self.shared.blocking.shut_down();
    }
}
// ANCHOR_END: shutdown

/// Spawns a task onto the runtime this code runs in (inside `block_on` or a task).
///
/// # Panics
///
/// Outside a runtime: there is no executor to run the task. Use
/// [`Runtime::spawn`] there.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let spawned_at = Location::caller();
    scheduler::with_current("spawn", |shared| shared.spawn(future, spawned_at))
}

/// Runs `f` on the current runtime's blocking pool; the handle gives its
/// result (see [`crate::blocking`]).
///
/// # Panics
///
/// Outside a runtime (use [`Runtime::spawn_blocking`] there).
#[track_caller]
pub fn spawn_blocking<T, F>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let spawned_at = Location::caller();
    scheduler::with_current("spawn_blocking", |shared| shared.blocking.spawn(f, spawned_at))
}
