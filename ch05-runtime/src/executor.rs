//! The executor: the poll → wait → wake cycle, in one file.
//!
//! ```text
//!          ┌──────────── poll ────────────┐
//!          │ take a task from a run queue │
//!          │ task.run(): future.poll(cx)  │──── Ready: the JoinHandle gets the output
//!          └──────────────┬───────────────┘
//!                 Pending │ the future left cx.waker() with the reactor,
//!                         │ a timer, a channel, another thread ...
//!          ┌──────────── wait ────────────┐
//!          │ no task to run: park the     │
//!          │ thread (no CPU used)         │
//!          └──────────────┬───────────────┘
//!                         │ the reactor's thread sees an event and calls waker.wake()
//!          ┌──────────── wake ────────────┐
//!          │ schedule(task): push it into │
//!          │ a run queue, unpark the      │──── back to poll
//!          │ executor's thread            │
//!          └──────────────────────────────┘
//! ```
//!
//! The executor never talks to the reactor, and the reactor never names a
//! task: a future hands its [`Waker`] to whatever it waits for, and `wake()`
//! is [`schedule`]. Any executor can drive any leaf future of this crate, and
//! any future written against `std` alone runs here.
//!
//! Two executors share the task type and this cycle:
//!
//! - **single-threaded** ([`Runtime::new`]): tasks run on the thread that
//!   calls [`Runtime::block_on`]. A wake on that thread pushes into a plain
//!   `VecDeque` only that thread touches (no lock); a wake from another
//!   thread (the reactor, a blocking job) goes through the *injector*, a
//!   mutex-protected queue, and unparks the thread.
//! - **multi-threaded** ([`Builder::worker_threads`]): `n` worker threads
//!   take tasks from the injector and wait on a condition variable when it is
//!   empty. One shared queue keeps it simple and fair; its lock is the price.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::ptr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};

use ch01_os_threads::say;

use crate::blocking::BlockingPool;
use crate::join::JoinHandle;
use crate::slab::Slab;
use crate::task::{Task, TaskCell, TaskId};
use crate::trace::{Event, Tracer, WakeSource};
use crate::waker::Signal;

/// How many tasks the single-threaded loop runs before it looks at the
/// `block_on` future and the injector again, so neither waits behind a
/// long local queue.
const BATCH: usize = 61;

/// Which executor a [`Runtime`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Tasks run on the thread inside [`Runtime::block_on`].
    CurrentThread,
    /// Tasks run on this many worker threads.
    MultiThread(usize),
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
        let shared = Arc::new(Shared {
            flavor,
            injector: Mutex::new(Injector { queue: VecDeque::new(), driver: None, idle_workers: 0, notified: 0, closed: false }),
            work_available: Condvar::new(),
            tasks: Mutex::new(TaskList { slab: Slab::new(), closed: false }),
            blocking: BlockingPool::new(self.max_blocking_threads),
            tracer: self.tracer,
            log_cycle: self.log_cycle,
        });
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
    shared: Arc<Shared>,
    /// The multi-threaded executor's worker threads.
    workers: Vec<thread::JoinHandle<()>>,
}

/// The part of a runtime that tasks (through their wakers) and worker
/// threads hold on to.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Single- or multi-threaded.
    flavor: Flavor,
    /// Tasks woken or spawned from a thread that has no local queue for us.
    injector: Mutex<Injector>,
    /// Idle workers wait here for the injector to get a task.
    work_available: Condvar,
    /// Every task that has not finished, so that shutdown can drop them.
    tasks: Mutex<TaskList>,
    /// Threads for `spawn_blocking`.
    pub(crate) blocking: BlockingPool,
    /// Where task events go, if anywhere.
    tracer: Option<Tracer>,
    /// Print `[executor]` park/unpark lines.
    log_cycle: bool,
}

/// The shared run queue, behind [`Shared::injector`]'s mutex.
#[derive(Debug)]
struct Injector {
    /// Tasks to poll, oldest first.
    queue: VecDeque<Task>,
    /// Single-threaded: the thread inside `block_on`, to unpark after a push.
    driver: Option<Thread>,
    /// Multi-threaded: workers waiting on `work_available`.
    idle_workers: usize,
    /// Multi-threaded: wake-ups sent to idle workers that have not woken yet
    /// (a burst of pushes wakes each idle worker once, not once per push).
    notified: usize,
    /// Set at shutdown: pushes are dropped instead of queued.
    closed: bool,
}

/// The unfinished tasks, behind [`Shared::tasks`]'s mutex.
#[derive(Debug)]
struct TaskList {
    /// The tasks, each under the key it keeps in its `TaskCell`.
    slab: Slab<Task>,
    /// Set at shutdown: `spawn` refuses new tasks.
    closed: bool,
}

/// What the current thread is doing for which runtime.
struct ThreadContext {
    /// The runtime `spawn` (the free function) spawns onto: set inside
    /// `block_on` and on worker threads.
    runtime: RefCell<Option<Arc<Shared>>>,
    /// The runtime whose tasks this thread runs (the single-threaded
    /// runtime's `block_on` thread, or a worker thread), if any: compared by
    /// address only, to know whether a wake comes from that runtime's own
    /// thread.
    runner: Cell<*const Shared>,
    /// Single-threaded: the run queue for wakes made on the `block_on`
    /// thread. No lock, as no other thread ever touches it.
    local: RefCell<VecDeque<Task>>,
}

thread_local! {
    static CONTEXT: ThreadContext = const {
        ThreadContext {
            runtime: RefCell::new(None),
            runner: Cell::new(ptr::null()),
            local: RefCell::new(VecDeque::new()),
        }
    };
}

// ANCHOR: schedule
/// The *wake* phase: puts a task (just marked `SCHEDULED`) into a run queue.
///
/// Single-threaded, on the thread that runs the runtime: into that thread's
/// local queue, no lock, no syscall. Anywhere else: into the runtime's
/// injector, and the thread that will run it is woken up if needed.
pub(crate) fn schedule(task: Task) {
    let owner: *const Shared = Arc::as_ptr(task.scheduler());
    let local = task.scheduler().flavor == Flavor::CurrentThread;
    let mut task = Some(task);
    // `try_with`: while a thread exits, its thread-locals may be gone already.
    let on_runner = CONTEXT
        .try_with(|cx| {
            let on_runner = ptr::eq(cx.runner.get(), owner);
            if on_runner && local {
                cx.local.borrow_mut().extend(task.take());
            }
            on_runner
        })
        .unwrap_or(false);
    if let Some(task) = task {
        Arc::clone(task.scheduler()).inject(task, on_runner);
    }
}

impl Shared {
    /// The shared path of [`schedule`]: the injector, then wake whoever runs it.
    /// `from_worker`: the wake comes from one of this runtime's own threads.
    fn inject(&self, task: Task, from_worker: bool) {
        let mut injector = self.lock_injector();
        if injector.closed {
            return; // shut down: `task` is dropped (it is complete, or about to be)
        }
        injector.queue.push_back(task);
        match self.flavor {
            Flavor::CurrentThread => {
                if let Some(driver) = &injector.driver {
                    driver.unpark(); // a no-op if it is awake, a futex wake if parked
                }
            }
            Flavor::MultiThread(_) => {
                // A worker that wakes a task (itself, or the receiver of its
                // message) takes it from the queue as soon as its poll ends:
                // waking an idle worker for it would only move it to another
                // CPU (~50 µs here). Wake one only if more than that one task
                // is waiting, or if the wake came from outside the workers.
                if injector.idle_workers > injector.notified && (!from_worker || injector.queue.len() > 1) {
                    injector.notified += 1;
                    self.work_available.notify_one();
                }
            }
        }
    }
}
// ANCHOR_END: schedule

impl Shared {
    fn lock_injector(&self) -> MutexGuard<'_, Injector> {
        // No code panics while holding these locks (tasks are dropped after
        // they are released), so a poisoned lock still guards consistent data.
        self.injector.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> MutexGuard<'_, TaskList> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a task for `future`, lists it, and queues its first poll.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = TaskId::next();
        let mut tasks = self.lock_tasks();
        if tasks.closed {
            drop(tasks);
            // Shut down: the task is born finished, with an error for its handle.
            let (task, handle) = TaskCell::create(future, id, u32::MAX, Arc::clone(self));
            task.shut_down();
            return handle;
        }
        // A task keeps its key in 32 bits: four billion unfinished tasks at
        // once would not fit in memory anyway.
        let key = u32::try_from(tasks.slab.next_key()).unwrap_or(u32::MAX);
        let (task, handle) = TaskCell::create(future, id, key, Arc::clone(self));
        tasks.slab.insert(Arc::clone(&task));
        drop(tasks);
        if let Some(tracer) = &self.tracer {
            tracer.event(id, Event::Spawned);
        }
        schedule(task);
        handle
    }

    /// A task finished: forget it.
    pub(crate) fn remove_task(&self, key: u32) {
        let removed = self.lock_tasks().slab.remove(key as usize);
        drop(removed); // outside the lock
    }

    /// Where task events go, if anywhere.
    pub(crate) fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// A wake changed a task's state: trace it, if tracing.
    pub(crate) fn woken(&self, task: TaskId) {
        if let Some(tracer) = &self.tracer {
            tracer.woken(task);
        }
    }

    /// How many tasks have not finished.
    fn unfinished(&self) -> usize {
        self.lock_tasks().slab.len()
    }
}

/// Notes "this thread runs `shared`" in the thread-local context, and takes
/// the note back when dropped.
struct Enter {
    /// The runtime entered.
    shared: Arc<Shared>,
    /// Whether this thread is the single-threaded runtime's `block_on` thread.
    driver: bool,
}

impl Enter {
    /// # Panics
    ///
    /// If this thread already runs a runtime: a `block_on` inside a task
    /// would stop that runtime's thread until the inner future finished,
    /// and the tasks it waits for might need that very thread.
    /// `runs_tasks`: this thread polls the runtime's tasks (the
    /// single-threaded `block_on` thread, or a worker).
    fn new(shared: &Arc<Shared>, runs_tasks: bool) -> Enter {
        CONTEXT.with(|cx| {
            let mut runtime = cx.runtime.borrow_mut();
            assert!(
                runtime.is_none(),
                "block_on called on a thread that is already running a runtime (inside a task, or nested block_on)"
            );
            *runtime = Some(Arc::clone(shared));
            if runs_tasks {
                cx.runner.set(Arc::as_ptr(shared));
            }
        });
        let driver = runs_tasks && shared.flavor == Flavor::CurrentThread;
        if driver {
            shared.lock_injector().driver = Some(thread::current());
        }
        Enter { shared: Arc::clone(shared), driver }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        // Tasks still in the local queue go to the injector, so the next
        // `block_on` (maybe on another thread) finds them.
        let leftover = CONTEXT.with(|cx| {
            cx.runtime.borrow_mut().take();
            cx.runner.set(ptr::null());
            std::mem::take(&mut *cx.local.borrow_mut())
        });
        if self.driver {
            let mut injector = self.shared.lock_injector();
            injector.driver = None;
            if !injector.closed {
                injector.queue.extend(leftover);
            }
        }
    }
}

impl Runtime {
    /// A single-threaded runtime (tasks run inside [`block_on`](Self::block_on)).
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// A [`Builder`] for other settings.
    pub fn builder() -> Builder {
        Builder { worker_threads: None, max_blocking_threads: 4, tracer: None, log_cycle: false }
    }

    /// Single- or multi-threaded.
    pub fn flavor(&self) -> Flavor {
        self.shared.flavor
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

    // ANCHOR: block_on
    /// Runs `future` to completion on this thread and returns its output.
    /// Single-threaded: the spawned tasks run here too, meanwhile.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (a task, or another `block_on`).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = Enter::new(&self.shared, self.shared.flavor == Flavor::CurrentThread);
        // `block_on`'s own future is not a task: its waker only sets a flag
        // and unparks this thread. It is pinned on this stack frame, which
        // it never leaves before it is dropped (chapter 6).
        let signal = Signal::for_current_thread();
        let waker = Waker::from(Arc::clone(&signal));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            // Poll phase (a): the future given to block_on, when woken.
            if signal.take() {
                let _source = self.shared.tracer.as_ref().map(|_| WakeSource::BlockOn.enter());
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            match self.shared.flavor {
                // Poll phase (b): the tasks; then the wait phase if none ran.
                Flavor::CurrentThread => {
                    if self.run_tasks() == 0 {
                        self.park(&signal);
                    }
                }
                // The workers run the tasks; this thread only waits.
                Flavor::MultiThread(_) => signal.wait_keeping_flag(),
            }
        }
    }

    /// Single-threaded poll phase: runs up to [`BATCH`] tasks, local queue
    /// first, then the injector. A batch is not cut short when `block_on`'s
    /// future is woken: a future that wakes itself in a loop would otherwise
    /// get every turn and the tasks none.
    fn run_tasks(&self) -> usize {
        let mut ran = 0;
        while ran < BATCH {
            let Some(task) = self.next_task() else { break };
            task.run();
            ran += 1;
        }
        ran
    }

    /// The next task for the single-threaded loop.
    fn next_task(&self) -> Option<Task> {
        let local = CONTEXT.with(|cx| cx.local.borrow_mut().pop_front());
        if local.is_some() {
            return local;
        }
        // Only tasks woken by other threads are left: take them all at once,
        // one lock for the lot.
        let mut batch = std::mem::take(&mut self.shared.lock_injector().queue);
        let first = batch.pop_front();
        CONTEXT.with(|cx| cx.local.borrow_mut().extend(batch));
        first
    }

    /// Single-threaded wait phase: nothing to run, so park until a wake
    /// (a task pushed into the injector, or `block_on`'s future woken).
    fn park(&self, signal: &Signal) {
        // A wake from another thread may have come in since we looked; the
        // injector is checked under its lock, and any push after this check
        // unparks us, so `park` returns at once (unpark before park counts).
        if !self.shared.lock_injector().queue.is_empty() || signal.is_set() {
            return;
        }
        if self.shared.log_cycle {
            say!("executor", "nothing to run: park ({} task(s) waiting to be woken)", self.shared.unfinished());
        }
        thread::park();
        if self.shared.log_cycle {
            let queued = self.shared.lock_injector().queue.len();
            let main = if signal.is_set() { ", block_on's future woken" } else { "" };
            say!("executor", "unparked: {queued} task(s) in the injector{main}");
        }
    }
    // ANCHOR_END: block_on
}

impl Signal {
    /// Parks until the flag is set, and leaves it set (the caller takes it).
    fn wait_keeping_flag(&self) {
        while !self.is_set() {
            thread::park();
        }
    }
}

// ANCHOR: worker
/// A worker thread of the multi-threaded executor: poll phase (take a task
/// from the injector, run it), wait phase (no task: sleep on the condition
/// variable until a wake pushes one), until the runtime shuts down.
fn worker(shared: Arc<Shared>) {
    let _enter = Enter::new(&shared, true);
    loop {
        let task = {
            let mut injector = shared.lock_injector();
            loop {
                if let Some(task) = injector.queue.pop_front() {
                    break task;
                }
                if injector.closed {
                    return;
                }
                injector.idle_workers += 1;
                injector = shared.work_available.wait(injector).unwrap_or_else(PoisonError::into_inner);
                injector.idle_workers -= 1;
                injector.notified = injector.notified.saturating_sub(1);
            }
        };
        task.run();
    }
}
// ANCHOR_END: worker

// ANCHOR: shutdown
impl Drop for Runtime {
    fn drop(&mut self) {
        // 1. Close the injector: workers stop once they finish their current
        //    poll, and wakes from now on are dropped instead of queued.
        let queued = {
            let mut injector = self.shared.lock_injector();
            injector.closed = true;
            std::mem::take(&mut injector.queue)
        };
        self.shared.work_available.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        drop(queued);
        // 2. Drop every unfinished task's future: idle tasks are referenced
        //    only by wakers (held by the reactor, a channel, a timer), so the
        //    list is the only way to reach them. Dropping a future drops its
        //    sockets and timers, and they deregister themselves.
        let unfinished = {
            let mut tasks = self.shared.lock_tasks();
            tasks.closed = true;
            tasks.slab.drain()
        };
        for task in unfinished {
            task.shut_down();
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
    current().spawn(future)
}

/// The runtime of the current thread.
///
/// # Panics
///
/// If the thread runs no runtime.
pub(crate) fn current() -> Arc<Shared> {
    CONTEXT
        .with(|cx| cx.runtime.borrow().clone())
        .expect("spawn called outside a runtime: use Runtime::spawn, or call it from inside block_on or a task")
}
