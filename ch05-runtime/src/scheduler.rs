//! Where a woken task goes: the run queues, and waking the thread that runs
//! them.
//!
//! Both executors ([`crate::current_thread`], [`crate::multi_thread`]) share
//! this part; a task reaches it only through the [`Schedule`] trait.
//!
//! - A wake on the thread that runs a single-threaded runtime pushes into
//!   that thread's **local queue**: a `VecDeque` in a thread-local, no lock,
//!   no system call.
//! - Any other wake goes through the **injector**, the runtime's one shared
//!   queue behind a mutex, and then wakes the thread that will run it: the
//!   single-threaded runtime's thread (unpark it, or interrupt the
//!   `epoll_wait` it sleeps in), or one idle worker.
//!
//! The multi-threaded executor has no local queues: every wake goes through
//! the injector, and its workers take tasks from there, oldest first.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::blocking::BlockingPool;
use crate::id::TaskId;
use crate::join::JoinHandle;
use crate::park::{Parker, Sleeper};
use crate::reactor::Reactor;
use crate::slab::Slab;
use crate::task::{PollSettings, Schedulable, Schedule, Task, TaskCell};
use crate::trace::Event;

/// Which executor a [`Runtime`](crate::Runtime) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Tasks run on the thread inside [`Runtime::block_on`](crate::Runtime::block_on).
    CurrentThread,
    /// Tasks run on this many worker threads.
    MultiThread(usize),
}

/// What a runtime's tasks (through their wakers), its `block_on` and its
/// worker threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Single- or multi-threaded.
    pub(crate) flavor: Flavor,
    /// Tasks woken or spawned from a thread that has no local queue for us.
    injector: Mutex<Injector>,
    /// Idle workers wait here for the injector to get a task.
    pub(crate) work_available: Condvar,
    /// Every task that has waited (returned `Pending`) and not finished, so
    /// that shutdown can reach it: a waiting task sits in no queue.
    tasks: Mutex<Slab<Task>>,
    /// Tasks spawned and not finished.
    live: AtomicUsize,
    /// How tasks are polled: budget, slow-poll threshold, tracer.
    pub(crate) settings: PollSettings,
    /// The single-threaded loop's fairness intervals.
    pub(crate) intervals: Intervals,
    /// Threads for `spawn_blocking`.
    pub(crate) blocking: BlockingPool,
    /// Print `[executor]` lines when the single-threaded loop waits and wakes.
    pub(crate) log_cycle: bool,
    /// `IoDriver::ExecutorThread`: the runtime's own reactor (a wake from
    /// another thread interrupts its `epoll_wait`).
    pub(crate) reactor: Option<Arc<Reactor>>,
    /// How the single-threaded runtime's thread waits; `block_on` takes it
    /// while it runs.
    pub(crate) parker: Mutex<Option<Parker>>,
}

/// How often the single-threaded loop looks elsewhere than its local queue
/// while that queue has work (see [`crate::current_thread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Intervals {
    /// Take the injector's tasks first every this many polls.
    pub(crate) injector: u32,
    /// Let the driver in (fire due timers, take ready events) every this
    /// many polls without a wait.
    pub(crate) driver: u32,
}

// ANCHOR: injector
/// The shared run queue, behind [`Shared::injector`]'s mutex.
#[derive(Debug)]
struct Injector {
    /// Tasks to poll, oldest first.
    queue: VecDeque<Task>,
    /// Set at shutdown: pushes are refused, and the task is dropped instead.
    closed: bool,
    /// Who waits for this queue to get a task, and how to wake them.
    sleepers: Sleepers,
}

/// The threads that sleep until the injector gets a task.
#[derive(Debug)]
enum Sleepers {
    /// Single-threaded: the thread inside `block_on`, and where it sleeps.
    BlockOn(Sleeper),
    /// Multi-threaded: the workers waiting on [`Shared::work_available`].
    Workers {
        /// How many wait there.
        idle: usize,
        /// Wake-ups sent that no worker has taken yet: a burst of pushes
        /// wakes each idle worker once, not once per push.
        notified: usize,
    },
}
// ANCHOR_END: injector

/// What the current thread is doing for which runtime.
struct ThreadContext {
    /// The runtime `spawn` (the free function) spawns onto: set inside
    /// `block_on` and on worker threads.
    runtime: RefCell<Option<Arc<Shared>>>,
    /// The runtime whose tasks this thread runs (the single-threaded
    /// runtime's `block_on` thread, or a worker), if any: compared by
    /// address only, to know whether a wake comes from that runtime's own
    /// thread.
    runner: Cell<*const Shared>,
    /// The single-threaded runtime whose `block_on` thread this is, if any:
    /// its wakes on this thread go to `local`. Compared by address only.
    local_for: Cell<*const Shared>,
    /// Single-threaded: the run queue for wakes made on the `block_on`
    /// thread. No lock, as no other thread ever touches it.
    local: RefCell<VecDeque<Task>>,
}

thread_local! {
    static CONTEXT: ThreadContext = const {
        ThreadContext {
            runtime: RefCell::new(None),
            runner: Cell::new(ptr::null()),
            local_for: Cell::new(ptr::null()),
            local: RefCell::new(VecDeque::new()),
        }
    };
}

// ANCHOR: schedule
impl Schedule for Shared {
    /// On the single-threaded runtime's own thread: its local queue.
    fn schedule_local<T: Schedulable + 'static>(runtime: *const Shared, task: Arc<T>) -> Result<(), Arc<T>> {
        if !keeps_local_queue_for(runtime) {
            return Err(task);
        }
        CONTEXT.with(|cx| cx.local.borrow_mut().push_back(task as Task));
        Ok(())
    }

    /// From anywhere: the injector, then wake whoever runs it.
    fn schedule(&self, task: Task) {
        if let Err(task) = self.inject(task) {
            // The runtime is shutting down. A task that can be woken has
            // waited before, so it is on the runtime's list, and shutdown
            // drops its future from there: this reference, the wake's, just goes.
            drop(task);
        }
    }

    fn list(&self, task: Task) -> u32 {
        let key = self.lock_tasks().insert(task);
        // 32 bits: four billion waiting tasks at once would not fit in memory.
        u32::try_from(key).unwrap_or(u32::MAX)
    }

    fn done(&self, key: Option<u32>) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(key) = key {
            let removed = self.lock_tasks().remove(key as usize);
            drop(removed); // outside the lock
        }
    }

    fn poll_settings(&self) -> &PollSettings {
        &self.settings
    }
}
// ANCHOR_END: schedule

/// Whether this thread's local queue belongs to the runtime at `runtime`
/// (it is that single-threaded runtime's `block_on` thread). The address is
/// only compared, never followed.
fn keeps_local_queue_for(runtime: *const Shared) -> bool {
    // `try_with`: while a thread exits, its thread-locals may be gone already.
    CONTEXT.try_with(|cx| ptr::eq(cx.local_for.get(), runtime)).unwrap_or(false)
}

/// Whether this thread runs the tasks of the runtime at `runtime`.
fn runs_tasks_of(runtime: *const Shared) -> bool {
    CONTEXT.try_with(|cx| ptr::eq(cx.runner.get(), runtime)).unwrap_or(false)
}

impl Shared {
    pub(crate) fn new(
        flavor: Flavor,
        settings: PollSettings,
        intervals: Intervals,
        blocking: BlockingPool,
        parker: Parker,
        log_cycle: bool,
    ) -> Shared {
        let sleepers = match flavor {
            Flavor::CurrentThread => Sleepers::BlockOn(Sleeper::default()),
            Flavor::MultiThread(_) => Sleepers::Workers { idle: 0, notified: 0 },
        };
        Shared {
            flavor,
            injector: Mutex::new(Injector { queue: VecDeque::new(), closed: false, sleepers }),
            work_available: Condvar::new(),
            tasks: Mutex::new(Slab::new()),
            live: AtomicUsize::new(0),
            settings,
            intervals,
            blocking,
            log_cycle,
            reactor: parker.reactor().cloned(),
            parker: Mutex::new(Some(parker)),
        }
    }

    /// The shared path of a wake: the injector, then wake whoever runs it.
    fn inject(&self, task: Task) -> Result<(), Task> {
        let from_worker = runs_tasks_of(self);
        let mut injector = self.lock_injector();
        if injector.closed {
            return Err(task); // shut down: it will never run
        }
        injector.queue.push_back(task);
        let queued = injector.queue.len();
        match &mut injector.sleepers {
            Sleepers::BlockOn(sleeper) => sleeper.wake(self.reactor.as_deref()),
            Sleepers::Workers { idle, notified } => {
                // A worker that wakes a task (itself, or the receiver of its
                // message) takes it from the queue as soon as its poll ends:
                // waking an idle worker for it would only move it to another
                // CPU (~50 µs here). Wake one only if more than that one task
                // is waiting, or if the wake came from outside the workers.
                if *idle > *notified && (!from_worker || queued > 1) {
                    *notified += 1;
                    self.work_available.notify_one();
                }
            }
        }
        Ok(())
    }

    /// Wakes the single-threaded runtime's thread, wherever it sleeps (for
    /// `block_on`'s own future, which is not a task).
    pub(crate) fn wake_block_on_thread(&self) {
        if let Sleepers::BlockOn(sleeper) = &mut self.lock_injector().sleepers {
            sleeper.wake(self.reactor.as_deref());
        }
    }

    /// Single-threaded wait phase, step 1: under the injector's lock, check
    /// that nothing was injected and `still_idle` holds, and if so note
    /// where this thread is about to sleep (see [`Sleeper`]). `false`: do
    /// not sleep, there is work.
    pub(crate) fn prepare_to_sleep(&self, in_reactor: bool, still_idle: impl FnOnce() -> bool) -> bool {
        let mut injector = self.lock_injector();
        if !injector.queue.is_empty() || !still_idle() {
            return false;
        }
        if let Sleepers::BlockOn(sleeper) = &mut injector.sleepers {
            sleeper.going_to_sleep(in_reactor);
        }
        true
    }

    /// Single-threaded wait phase, step 3: awake again.
    pub(crate) fn woke_up(&self) {
        if let Sleepers::BlockOn(sleeper) = &mut self.lock_injector().sleepers {
            sleeper.awake();
        }
    }

    /// Single-threaded: every task in the injector, in order, with one lock.
    pub(crate) fn take_injected(&self) -> VecDeque<Task> {
        std::mem::take(&mut self.lock_injector().queue)
    }

    /// How many tasks wait in the injector (for the `[executor]` lines).
    pub(crate) fn injected(&self) -> usize {
        self.lock_injector().queue.len()
    }

    /// Multi-threaded: the next task from the injector, waiting on
    /// [`Shared::work_available`] while there is none. `None`: shut down.
    pub(crate) fn next_injected_or_sleep(&self) -> Option<Task> {
        let mut injector = self.lock_injector();
        loop {
            if let Some(task) = injector.queue.pop_front() {
                return Some(task);
            }
            if injector.closed {
                return None;
            }
            if let Sleepers::Workers { idle, .. } = &mut injector.sleepers {
                *idle += 1;
            }
            injector = self.work_available.wait(injector).unwrap_or_else(PoisonError::into_inner);
            if let Sleepers::Workers { idle, notified } = &mut injector.sleepers {
                *idle -= 1;
                *notified = notified.saturating_sub(1);
            }
        }
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
        self.lock_tasks().drain()
    }

    fn lock_injector(&self) -> MutexGuard<'_, Injector> {
        // No code panics while holding these locks (tasks are dropped after
        // they are released), so a poisoned lock still guards consistent data.
        self.injector.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_tasks(&self) -> MutexGuard<'_, Slab<Task>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a task for `future`, spawned at `spawned_at`, and queues its
    /// first poll.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F, spawned_at: &'static Location<'static>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = TaskId::next();
        let (task, handle) = TaskCell::create(future, id, spawned_at, Arc::clone(self));
        self.live.fetch_add(1, Ordering::Relaxed);
        if let Some(tracer) = &self.settings.tracer {
            tracer.event(id, Event::Spawned(spawned_at));
        }
        if keeps_local_queue_for(Arc::as_ptr(self)) {
            CONTEXT.with(|cx| cx.local.borrow_mut().push_back(task));
        } else if let Err(task) = self.inject(task) {
            // Shut down (a task spawning while the runtime drops): the task
            // is finished at once, here, with an error for its handle.
            task.shut_down();
        }
        handle
    }

    /// How many tasks have not finished.
    pub(crate) fn unfinished(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// The single-threaded loop's local queue: the next task.
pub(crate) fn pop_local() -> Option<Task> {
    CONTEXT.with(|cx| cx.local.borrow_mut().pop_front())
}

/// Appends `tasks` to the local queue, in order.
pub(crate) fn extend_local(tasks: VecDeque<Task>) {
    CONTEXT.with(|cx| cx.local.borrow_mut().extend(tasks));
}

/// How many tasks wait in the local queue (for the `[executor]` lines).
pub(crate) fn local_len() -> usize {
    CONTEXT.with(|cx| cx.local.borrow().len())
}

/// Notes "this thread runs `shared`" in the thread-local context, and takes
/// the note back when dropped.
pub(crate) struct Enter {
    /// The runtime entered.
    shared: Arc<Shared>,
    /// Whether this thread is the single-threaded runtime's `block_on` thread.
    is_block_on_thread: bool,
}

impl Enter {
    /// `runs_tasks`: this thread polls the runtime's tasks (the
    /// single-threaded `block_on` thread, or a worker).
    ///
    /// # Panics
    ///
    /// If this thread already runs a runtime (see [`assert_outside_runtime`]).
    pub(crate) fn new(shared: &Arc<Shared>, runs_tasks: bool) -> Enter {
        assert_outside_runtime();
        CONTEXT.with(|cx| *cx.runtime.borrow_mut() = Some(Arc::clone(shared)));
        let is_block_on_thread = runs_tasks && shared.flavor == Flavor::CurrentThread;
        if is_block_on_thread && let Sleepers::BlockOn(sleeper) = &mut shared.lock_injector().sleepers {
            sleeper.thread = Some(std::thread::current());
        }
        CONTEXT.with(|cx| {
            if runs_tasks {
                cx.runner.set(Arc::as_ptr(shared));
            }
            if is_block_on_thread {
                cx.local_for.set(Arc::as_ptr(shared));
            }
        });
        Enter { shared: Arc::clone(shared), is_block_on_thread }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        // Tasks still in the local queue go to the injector, so the next
        // `block_on` (maybe on another thread) finds them.
        let leftover = CONTEXT.with(|cx| {
            cx.runner.set(ptr::null());
            cx.local_for.set(ptr::null());
            cx.runtime.borrow_mut().take();
            std::mem::take(&mut *cx.local.borrow_mut())
        });
        if self.is_block_on_thread {
            let mut injector = self.shared.lock_injector();
            if let Sleepers::BlockOn(sleeper) = &mut injector.sleepers {
                sleeper.thread = None;
            }
            if !injector.closed {
                injector.queue.extend(leftover);
            }
        }
    }
}

/// # Panics
///
/// If this thread already runs a runtime: a `block_on` inside a task would
/// stop that runtime's thread until the inner future finished, and the
/// tasks it waits for might need that very thread.
pub(crate) fn assert_outside_runtime() {
    CONTEXT.with(|cx| {
        assert!(
            cx.runtime.borrow().is_none(),
            "block_on called on a thread that is already running a runtime (inside a task, or nested block_on)"
        );
    });
}

/// The runtime of the current thread, for `spawn` and `spawn_blocking`.
///
/// # Panics
///
/// If the thread runs no runtime.
pub(crate) fn with_current<R>(what: &str, f: impl FnOnce(&Arc<Shared>) -> R) -> R {
    CONTEXT.with(|cx| {
        // Borrowed, not cloned: no reference count to take and give back.
        let runtime = cx.runtime.borrow();
        match runtime.as_ref() {
            Some(shared) => f(shared),
            None => panic!(
                "{what} called outside a runtime: use Runtime::{what}, or call it from inside block_on or a task"
            ),
        }
    })
}
