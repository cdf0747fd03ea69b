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
//! - **multi-threaded** ([`Builder::worker_threads`](crate::Builder::worker_threads)):
//!   `n` worker threads take tasks from the injector and wait on a condition
//!   variable when it is empty. One shared queue keeps it simple and fair;
//!   its lock is the price.
//!
//! A single-threaded runtime built with [`IoDriver::ExecutorThread`](crate::IoDriver)
//! waits in its own reactor's `epoll_wait` instead of parking: the wait
//! phase and the reactor's wait are then the same system call, on the same
//! thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use ch01_os_threads::say;

use crate::blocking::BlockingPool;
use crate::join::JoinHandle;
use crate::reactor::{self, CurrentReactor, Driver, Reactor};
use crate::runtime::{Flavor, Runtime};
use crate::slab::Slab;
use crate::task::{Task, TaskCell, TaskId};
use crate::trace::{Event, Tracer, WakeSource};
use crate::waker::Signal;

/// How many tasks the single-threaded loop runs before it looks at the
/// `block_on` future and the injector again, so neither waits behind a
/// long local queue.
const BATCH: usize = 61;

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
    /// Every task that has waited (returned `Pending`) and not finished, so
    /// that shutdown can reach it: a waiting task sits in no queue.
    tasks: Mutex<TaskList>,
    /// Tasks spawned and not finished.
    live: AtomicUsize,
    /// Threads for `spawn_blocking`.
    pub(crate) blocking: BlockingPool,
    /// Where task events go, if anywhere.
    tracer: Option<Tracer>,
    /// Print `[executor]` park/unpark lines.
    log_cycle: bool,
    /// `IoDriver::ExecutorThread`: the runtime's own reactor.
    reactor: Option<Arc<Reactor>>,
    /// ... and its waiting half, taken by `block_on` while it runs.
    driver: Mutex<Option<Driver>>,
}

/// The shared run queue, behind [`Shared::injector`]'s mutex.
#[derive(Debug)]
struct Injector {
    /// Tasks to poll, oldest first.
    queue: VecDeque<Task>,
    /// Single-threaded: the thread inside `block_on`, to unpark after a push.
    block_on_thread: Option<Thread>,
    /// Single-threaded with its own reactor: that thread is asleep in the
    /// reactor's `epoll_wait` (unparking would not reach it; an interrupt does).
    in_reactor: bool,
    /// Multi-threaded: workers waiting on `work_available`.
    idle_workers: usize,
    /// Multi-threaded: wake-ups sent to idle workers that have not woken yet
    /// (a burst of pushes wakes each idle worker once, not once per push).
    notified: usize,
    /// Set at shutdown: pushes are dropped instead of queued.
    closed: bool,
}

/// The tasks that have waited, behind [`Shared::tasks`]'s mutex.
#[derive(Debug)]
struct TaskList {
    /// The tasks, each under the key it keeps in its `TaskCell`.
    slab: Slab<Task>,
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
    if let Err(task) = try_schedule(task) {
        // The runtime is shutting down. A task that can be woken has waited
        // before, so it is on the runtime's list, and shutdown drops its
        // future from there: this reference, the wake's, just goes.
        drop(task);
    }
}

/// [`schedule`], or the task back if its runtime is shut down.
fn try_schedule(task: Task) -> Result<(), Task> {
    let owner: *const Shared = Arc::as_ptr(task.scheduler());
    let local = task.scheduler().flavor == Flavor::CurrentThread;
    let mut task = Some(task);
    // `try_with`: while a thread exits, its thread-locals may be gone already.
    let on_runner = CONTEXT
        .try_with(|cx| {
            let on_runner = ptr::eq(cx.runner.get(), owner);
            if on_runner
                && local
                && let Some(task) = task.take()
            {
                cx.local.borrow_mut().push_back(task);
            }
            on_runner
        })
        .unwrap_or(false);
    match task {
        // The clone lets `task` move into the queue while we still use its runtime.
        Some(task) => Arc::clone(task.scheduler()).inject(task, on_runner),
        None => Ok(()),
    }
}

impl Shared {
    /// The shared path of [`schedule`]: the injector, then wake whoever runs it.
    /// `from_worker`: the wake comes from one of this runtime's own threads.
    fn inject(&self, task: Task, from_worker: bool) -> Result<(), Task> {
        let mut injector = self.lock_injector();
        if injector.closed {
            return Err(task); // shut down: it will never run
        }
        injector.queue.push_back(task);
        match self.flavor {
            Flavor::CurrentThread => self.wake_driver(&mut injector),
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
        Ok(())
    }

    /// Wakes the single-threaded runtime's thread, wherever it waits.
    fn wake_driver(&self, injector: &mut Injector) {
        if let Some(thread) = &injector.block_on_thread {
            thread.unpark(); // a no-op if it is awake, a futex wake if parked
        }
        if injector.in_reactor {
            injector.in_reactor = false; // one interrupt is enough
            if let Some(reactor) = &self.reactor {
                reactor.interrupt(); // asleep in epoll_wait: write to its eventfd
            }
        }
    }
}
// ANCHOR_END: schedule

impl Shared {
    pub(crate) fn new(
        flavor: Flavor,
        reactor: Option<(Arc<Reactor>, Driver)>,
        blocking: BlockingPool,
        tracer: Option<Tracer>,
        log_cycle: bool,
    ) -> Shared {
        let (reactor, driver) = reactor.map_or((None, None), |(reactor, driver)| (Some(reactor), Some(driver)));
        let injector = Injector {
            queue: VecDeque::new(),
            block_on_thread: None,
            in_reactor: false,
            idle_workers: 0,
            notified: 0,
            closed: false,
        };
        Shared {
            flavor,
            injector: Mutex::new(injector),
            work_available: Condvar::new(),
            tasks: Mutex::new(TaskList { slab: Slab::new() }),
            live: AtomicUsize::new(0),
            blocking,
            tracer,
            log_cycle,
            reactor,
            driver: Mutex::new(driver),
        }
    }

    /// Single- or multi-threaded.
    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The runtime's own reactor, if it has one.
    pub(crate) fn reactor(&self) -> Option<&Reactor> {
        self.reactor.as_deref()
    }

    /// Shutdown, step 1: no more pushes (so no more spawns); workers stop;
    /// the queued tasks come back.
    pub(crate) fn close_injector(&self) -> VecDeque<Task> {
        let queued = {
            let mut injector = self.lock_injector();
            injector.closed = true;
            std::mem::take(&mut injector.queue)
        };
        self.work_available.notify_all();
        queued
    }

    /// Shutdown, step 2: every task that has waited comes back.
    pub(crate) fn drain_task_list(&self) -> Vec<Task> {
        self.lock_tasks().slab.drain()
    }

    fn lock_injector(&self) -> MutexGuard<'_, Injector> {
        // No code panics while holding these locks (tasks are dropped after
        // they are released), so a poisoned lock still guards consistent data.
        self.injector.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> MutexGuard<'_, TaskList> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a task for `future` and queues its first poll.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = TaskId::next();
        let (task, handle) = TaskCell::create(future, id, Arc::clone(self));
        self.live.fetch_add(1, Ordering::Relaxed);
        if let Some(tracer) = &self.tracer {
            tracer.event(id, Event::Spawned);
        }
        if let Err(task) = try_schedule(task) {
            // Shut down (a task spawning while the runtime drops): the task is
            // finished at once, here, with an error for its handle.
            task.shut_down();
        }
        handle
    }

    /// A task returned `Pending` for the first time: from now on it may sit
    /// in no queue (its waker held by the reactor, a timer, a channel), so
    /// it goes on the list shutdown reaches it through. Returns its key.
    ///
    /// A task that finishes in its first poll never waits and is never
    /// listed: one lock less on each side of the shortest tasks.
    pub(crate) fn list_task(&self, task: Task) -> u32 {
        let key = self.lock_tasks().slab.insert(task);
        // 32 bits: four billion waiting tasks at once would not fit in memory.
        u32::try_from(key).unwrap_or(u32::MAX)
    }

    /// A task finished: forget it (`key`: its place on the list, if listed).
    pub(crate) fn task_done(&self, key: Option<u32>) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(key) = key {
            let removed = self.lock_tasks().slab.remove(key as usize);
            drop(removed); // outside the lock
        }
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
    pub(crate) fn unfinished(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Notes "this thread runs `shared`" in the thread-local context, and takes
/// the note back when dropped.
struct Enter {
    /// The runtime entered.
    shared: Arc<Shared>,
    /// Whether this thread is the single-threaded runtime's `block_on` thread.
    is_block_on_thread: bool,
    /// With its own reactor: that reactor's waiting half, held while this
    /// thread drives it.
    reactor_driver: Option<Driver>,
    /// ... and that reactor made current for the leaf futures polled here.
    _current_reactor: Option<CurrentReactor>,
}

impl Enter {
    /// `runs_tasks`: this thread polls the runtime's tasks (the
    /// single-threaded `block_on` thread, or a worker).
    ///
    /// # Panics
    ///
    /// If this thread already runs a runtime: a `block_on` inside a task
    /// would stop that runtime's thread until the inner future finished,
    /// and the tasks it waits for might need that very thread. And if two
    /// threads call `block_on` on one single-threaded runtime at once: its
    /// tasks can only run on one of them.
    fn new(shared: &Arc<Shared>, runs_tasks: bool) -> Enter {
        CONTEXT.with(|cx| {
            assert!(
                cx.runtime.borrow().is_none(),
                "block_on called on a thread that is already running a runtime (inside a task, or nested block_on)"
            );
        });
        let is_block_on_thread = runs_tasks && shared.flavor == Flavor::CurrentThread;
        if is_block_on_thread {
            let mut injector = shared.lock_injector();
            assert!(
                injector.block_on_thread.is_none(),
                "block_on called from two threads at once on a single-threaded runtime (its tasks run on one thread)"
            );
            injector.block_on_thread = Some(thread::current());
        }
        CONTEXT.with(|cx| {
            *cx.runtime.borrow_mut() = Some(Arc::clone(shared));
            if runs_tasks {
                cx.runner.set(Arc::as_ptr(shared));
            }
        });
        let (reactor_driver, current_reactor) = match (&shared.reactor, is_block_on_thread) {
            (Some(own), true) => {
                let taken = shared.driver.lock().unwrap_or_else(PoisonError::into_inner).take();
                (taken, Some(reactor::enter(Arc::clone(own))))
            }
            _ => (None, None),
        };
        Enter { shared: Arc::clone(shared), is_block_on_thread, reactor_driver, _current_reactor: current_reactor }
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
        if let Some(driver) = self.reactor_driver.take() {
            *self.shared.driver.lock().unwrap_or_else(PoisonError::into_inner) = Some(driver);
        }
        if self.is_block_on_thread {
            let mut injector = self.shared.lock_injector();
            injector.block_on_thread = None;
            if !injector.closed {
                injector.queue.extend(leftover);
            }
        }
    }
}

/// The waker of the future given to a single-threaded `block_on`: a flag,
/// then the same wake-up a task's wake from another thread gets.
struct MainWaker {
    /// Set by a wake, cleared when `block_on` polls the future.
    woken: AtomicBool,
    /// The runtime whose thread to wake.
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.shared.wake_driver(&mut self.shared.lock_injector());
    }
}

impl Runtime {
    /// Runs `future` to completion on this thread and returns its output.
    /// Single-threaded: the spawned tasks run here too, meanwhile.
    ///
    /// # Panics
    ///
    /// If called from inside a runtime (a task, or another `block_on`), or
    /// from two threads at once on a single-threaded runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self.shared.flavor {
            Flavor::CurrentThread => self.run_until(future),
            Flavor::MultiThread(_) => self.wait_for(future),
        }
    }

    // ANCHOR: block_on
    /// The single-threaded executor: poll `future` when it was woken, run the
    /// tasks, and wait when there is nothing to run, until `future` is ready.
    fn run_until<F: Future>(&self, future: F) -> F::Output {
        let mut enter = Enter::new(&self.shared, true);
        // `block_on`'s own future is not a task: its waker sets a flag and
        // wakes this thread. It is pinned on this stack frame, which it never
        // leaves before it is dropped (chapter 6).
        let main = Arc::new(MainWaker { woken: AtomicBool::new(true), shared: Arc::clone(&self.shared) });
        let waker = Waker::from(Arc::clone(&main));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            // Poll phase (a): the future given to block_on, when woken.
            if main.woken.swap(false, Ordering::Acquire) {
                let _source = self.shared.tracer.as_ref().map(|_| WakeSource::BlockOn.enter());
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            // Poll phase (b): the tasks; then the wait phase if none ran.
            if self.run_tasks() == 0 {
                self.wait(&main, enter.reactor_driver.as_mut());
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

    /// Single-threaded wait phase: nothing to run, so sleep until a wake:
    /// parked (the reactor thread unparks us), or inside our own reactor's
    /// `epoll_wait` (its events wake our tasks right here, on this thread).
    fn wait(&self, main: &MainWaker, driver: Option<&mut Driver>) {
        // A wake from another thread may have come in since we looked. The
        // injector and the flag are checked under the injector's lock, and
        // a wake after this check unparks us (unpark before park counts) or
        // interrupts the `epoll_wait` we are about to enter.
        {
            let mut injector = self.shared.lock_injector();
            if !injector.queue.is_empty() || main.woken.load(Ordering::Acquire) {
                return;
            }
            injector.in_reactor = driver.is_some();
        }
        let log = self.shared.log_cycle;
        match (driver, &self.shared.reactor) {
            (Some(driver), Some(reactor)) => {
                if log {
                    say!(
                        "executor",
                        "nothing to run: wait in our reactor ({} task(s) waiting)",
                        self.shared.unfinished()
                    );
                }
                reactor.turn(driver);
                self.shared.lock_injector().in_reactor = false;
            }
            _ => {
                if log {
                    say!("executor", "nothing to run: park ({} task(s) waiting to be woken)", self.shared.unfinished());
                }
                thread::park();
            }
        }
        if log {
            let (local, injected) =
                (CONTEXT.with(|cx| cx.local.borrow().len()), self.shared.lock_injector().queue.len());
            let main = if main.woken.load(Ordering::Acquire) { ", block_on's future woken" } else { "" };
            say!("executor", "awake: {local} task(s) woken on this thread, {injected} in the injector{main}");
        }
    }
    // ANCHOR_END: block_on

    /// The multi-threaded executor's `block_on`: the workers run the tasks;
    /// this thread polls `future` when woken and parks in between.
    fn wait_for<F: Future>(&self, future: F) -> F::Output {
        let _enter = Enter::new(&self.shared, false);
        let signal = Signal::for_current_thread();
        let waker = Waker::from(Arc::clone(&signal));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            let _source = self.shared.tracer.as_ref().map(|_| WakeSource::BlockOn.enter());
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            signal.wait();
        }
    }
}

// ANCHOR: worker
/// A worker thread of the multi-threaded executor: poll phase (take a task
/// from the injector, run it), wait phase (no task: sleep on the condition
/// variable until a wake pushes one), until the runtime shuts down.
pub(crate) fn worker(shared: Arc<Shared>) {
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

/// Spawns `future` onto the runtime of the current thread.
///
/// # Panics
///
/// If the thread runs no runtime.
pub(crate) fn spawn_here<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    CONTEXT.with(|cx| {
        // Borrowed, not cloned: no reference count to take and give back.
        let runtime = cx.runtime.borrow();
        let shared = runtime
            .as_ref()
            .expect("spawn called outside a runtime: use Runtime::spawn, or call it from inside block_on or a task");
        shared.spawn(future)
    })
}
