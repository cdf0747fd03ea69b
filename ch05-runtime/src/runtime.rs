//! [`Runtime`] and its [`Builder`]: which executor, which I/O driver, and
//! what dropping a runtime does. The executor's cycle itself is in
//! [`crate::executor`].

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::thread;

use crate::blocking::BlockingPool;
use crate::executor::{Shared, spawn_here, worker};
use crate::join::JoinHandle;
use crate::reactor::Reactor;
use crate::trace::Tracer;

/// Which executor a [`Runtime`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Tasks run on the thread inside [`Runtime::block_on`].
    CurrentThread,
    /// Tasks run on this many worker threads.
    MultiThread(usize),
}

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
        let reactor = match (self.io_driver, flavor) {
            (IoDriver::ReactorThread, _) => None,
            (IoDriver::ExecutorThread, Flavor::CurrentThread) => Some(Reactor::owned()?),
            (IoDriver::ExecutorThread, Flavor::MultiThread(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "IoDriver::ExecutorThread is for the single-threaded executor (leave out worker_threads)",
                ));
            }
        };
        let shared = Arc::new(Shared::new(
            flavor,
            reactor,
            BlockingPool::new(self.max_blocking_threads),
            self.tracer,
            self.log_cycle,
        ));
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
        }
    }

    /// Single- or multi-threaded.
    pub fn flavor(&self) -> Flavor {
        self.shared.flavor()
    }

    /// Spawns a task; it starts at the runtime's next chance (for the
    /// single-threaded one: inside the next `block_on`).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future)
    }

    /// Runs `f` on this runtime's blocking pool (see [`crate::blocking`]).
    pub fn spawn_blocking<T, F>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.blocking.spawn(f)
    }

    /// How many spawned tasks have not finished yet.
    pub fn unfinished_tasks(&self) -> usize {
        self.shared.unfinished()
    }

    /// How many sockets are registered with the reactor this runtime's
    /// tasks use (its own, or the process's: then other runtimes' too).
    pub fn registered_sources(&self) -> usize {
        self.shared.reactor().map_or_else(crate::reactor::registered_sources, Reactor::sources_len)
    }

    /// How many timers are pending in the reactor this runtime's tasks use.
    pub fn pending_timers(&self) -> usize {
        self.shared.reactor().map_or_else(crate::reactor::pending_timers, Reactor::timers_len)
    }
}

// ANCHOR: shutdown
impl Drop for Runtime {
    fn drop(&mut self) {
        // 1. Close the injector: workers stop once they finish their current
        //    poll, a wake from now on is dropped instead of queued, and a
        //    task spawned from now on is born finished.
        let queued = self.shared.close_injector();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
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
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_here(future)
}
