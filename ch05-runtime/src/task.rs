//! A task: a spawned future, its state bits and its join slot, in one
//! allocation.
//!
//! ```text
//!   Arc<TaskCell<F, S>>  (one heap allocation per task)
//!   ┌──────────────────────────────────────────────────────────────┐
//!   │ strong / weak counts   (the Arc's)                           │
//!   │ state: AtomicU32       SCHEDULED | RUNNING | NOTIFIED | ...  │
//!   │ id, key, spawned_at    who it is                             │
//!   │ scheduler: Arc<S>      where it goes when woken              │
//!   │ future: Option<F>      the state machine; None once finished │
//!   │ join: JoinSlot<F::Output>   the result, for the JoinHandle   │
//!   └──────────────────────────────────────────────────────────────┘
//!        ▲                ▲                     ▲
//!   run queue entry   JoinHandle           every Waker clone
//!   (Arc<dyn Schedulable>)  (Arc<dyn Joinable>)  (Waker::from(Arc))
//! ```
//!
//! The same `Arc` is the queue entry, the [`JoinHandle`]'s target and the
//! [`Waker`]: a waker *is* a reference to the task, and `wake()` puts that
//! reference into the run queue. No side table, no second allocation.
//!
//! A task knows its runtime only through the [`Schedule`] trait: four
//! things it asks of it (queue me, list me, I am done, how do I poll). So
//! this file depends on no executor, and both executors (single- and
//! multi-threaded) use this one task type through the one implementation in
//! [`crate::scheduler`].

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::coop;
pub use crate::id::TaskId;
use crate::join::{JoinError, JoinHandle, JoinSlot, Joinable};
use crate::trace::{Event, Tracer, WakeSource};

/// The task being polled on this thread, if any: a task can name itself in
/// what it prints (`[task 3] got "b"`).
pub fn current_id() -> Option<TaskId> {
    WakeSource::current_task()
}

/// What the run queues hold: a task whose future type is erased.
pub(crate) type Task = Arc<dyn Schedulable>;

impl fmt::Debug for dyn Schedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id())
    }
}

/// What an executor can do with a task without knowing its future's type.
pub(crate) trait Schedulable: Send + Sync {
    /// The task's id.
    fn id(&self) -> TaskId;
    /// Polls the future once (the executor's *poll* phase). The task was
    /// taken out of a run queue; this decides where it goes next.
    fn run(self: Arc<Self>);
    /// Drops the future without polling it (the runtime is shutting down).
    fn shut_down(self: Arc<Self>);
}

// ANCHOR: schedule_trait
/// What a task needs from the runtime it belongs to.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// A wake just marked `task` `SCHEDULED`. If this thread is the one that
    /// runs the tasks of the runtime at `runtime` (compared by address only),
    /// push it into this thread's own queue (no lock, no syscall); otherwise
    /// hand it back.
    fn schedule_local<T: Schedulable + 'static>(runtime: *const Self, task: Arc<T>) -> Result<(), Arc<T>>;
    /// The general path, from any thread: the runtime's shared queue, and
    /// wake the thread that will run it.
    fn schedule(&self, task: Task);
    /// The task returned `Pending` for the first time, so from now on it may
    /// sit in no queue (its waker held by the reactor, a timer, a channel):
    /// keep it where shutdown can reach it. Returns its key there.
    fn list(&self, task: Task) -> u32;
    /// The task finished; `key`: its place on that list, if it was listed.
    fn done(&self, key: Option<u32>);
    /// How this runtime polls its tasks.
    fn poll_settings(&self) -> &PollSettings;
}
// ANCHOR_END: schedule_trait

/// How a runtime polls its tasks (set by its `Builder`).
#[derive(Debug, Clone, Default)]
pub(crate) struct PollSettings {
    /// Units of cooperative budget per poll ([`crate::coop`]); `None`: no budget.
    pub(crate) budget: Option<u32>,
    /// Time every poll, and report those longer than this; `None`: no timing.
    pub(crate) slow_poll: Option<Duration>,
    /// Where task events go, if anywhere.
    pub(crate) tracer: Option<Tracer>,
}

// ANCHOR: state_bits
/// The task's state: bits in one atomic word, so that every change sees
/// what all other threads did (each is one atomic read-modify-write).
///
/// The rules they keep:
/// - A task is in at most one run queue, at most once: only the wake that
///   sets `SCHEDULED` pushes it, and only the executor clears the bit, when
///   it takes the task out to run it.
/// - A wake is never lost: a wake while the task is being polled cannot
///   queue it (the executor still holds it), so it sets `NOTIFIED`, and the
///   executor polls once more when this poll returns `Pending`.
/// - Only the thread that set `RUNNING` touches the future (polls or drops it).
/// - A `COMPLETE` task is never polled again, and wakes are ignored.
mod state {
    /// In a run queue (or being pushed into one). Never set with `RUNNING`.
    pub(super) const SCHEDULED: u32 = 1 << 0;
    /// An executor thread is polling (or dropping) the future right now.
    pub(super) const RUNNING: u32 = 1 << 1;
    /// Woken while `RUNNING`: poll again once the current poll returns.
    pub(super) const NOTIFIED: u32 = 1 << 2;
    /// Finished, panicked, aborted or shut down: the future is gone.
    pub(super) const COMPLETE: u32 = 1 << 3;
    /// `JoinHandle::abort` was called: drop the future instead of polling it.
    pub(super) const ABORTED: u32 = 1 << 4;
    /// Not a scheduling state, a note: a slow poll of this task was already
    /// reported on stderr (once per task is enough to find it).
    pub(super) const SLOW_REPORTED: u32 = 1 << 5;
}
// ANCHOR_END: state_bits

use state::{ABORTED, COMPLETE, NOTIFIED, RUNNING, SCHEDULED, SLOW_REPORTED};

/// The `key` of a task that has never waited, so is on no list.
const UNLISTED: u32 = u32::MAX;

/// The atomic word with the [`state`] bits, and its transitions.
///
/// Every transition but the last is a compare-and-swap loop
/// (`fetch_update`): read the bits, compute the new ones, store them only if
/// nobody changed them in between, else try again with what they changed.
/// The last one, [`complete`](State::complete), is a plain store: once the
/// future is gone no other bit matters, and every other transition leaves a
/// `COMPLETE` task alone. `AcqRel` everywhere: a
/// thread that takes `RUNNING` sees everything the previous runner wrote to
/// the future, and on x86-64 every atomic read-modify-write is a full
/// barrier anyway.
#[derive(Debug)]
struct State(AtomicU32);

/// What a wake changed.
enum Woken {
    /// The task was idle and is now `SCHEDULED`: the waker must queue it.
    Queue,
    /// The task is being polled: `NOTIFIED` makes the executor poll it again.
    WhileRunning,
    /// Already scheduled or notified, or complete: nothing changed.
    Nothing,
}

/// What the executor does after a poll that returned `Pending`.
enum AfterPending {
    /// Nothing: a waker will schedule the task when there is progress to make.
    Wait,
    /// It was woken while it ran: queue it again.
    Reschedule,
    /// It was aborted while it ran: drop the future now.
    Abort,
}

impl State {
    fn transition(&self, f: impl FnMut(u32) -> Option<u32>) -> Result<u32, u32> {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, f)
    }

    /// A wake: what it changed.
    fn wake(&self) -> Woken {
        let before = self.transition(|s| {
            if s & (COMPLETE | SCHEDULED | NOTIFIED) != 0 {
                None // finished, or already going to be polled: nothing to do
            } else if s & RUNNING != 0 {
                Some(s | NOTIFIED) // the executor holds it: tell it to poll again
            } else {
                Some(s | SCHEDULED) // idle: the waker queues it
            }
        });
        match before {
            Err(_) => Woken::Nothing,
            Ok(s) if s & RUNNING != 0 => Woken::WhileRunning,
            Ok(_) => Woken::Queue,
        }
    }

    /// Taken out of a run queue: `SCHEDULED` → `RUNNING`. Returns the bits
    /// before, or `Err` if the task completed meanwhile (shut down while queued).
    fn start_poll(&self) -> Result<u32, u32> {
        self.transition(|s| if s & COMPLETE != 0 { None } else { Some((s & !SCHEDULED) | RUNNING) })
    }

    /// The poll returned `Pending`.
    fn end_pending(&self) -> AfterPending {
        let before = self.transition(|s| {
            if s & ABORTED != 0 {
                Some(s) // keep RUNNING: we drop the future next
            } else if s & NOTIFIED != 0 {
                Some((s & !(RUNNING | NOTIFIED)) | SCHEDULED)
            } else {
                Some(s & !RUNNING)
            }
        });
        let before = before.unwrap_or_else(|s| s); // the closure always returns Some
        if before & ABORTED != 0 {
            AfterPending::Abort
        } else if before & NOTIFIED != 0 {
            AfterPending::Reschedule
        } else {
            AfterPending::Wait
        }
    }

    /// The future is gone: `COMPLETE`, for good.
    fn complete(&self) {
        self.0.store(COMPLETE, Ordering::Release);
    }

    /// `JoinHandle::abort`. `true` if the caller must queue the task (it was
    /// idle, so nothing else would run it to notice the abort).
    fn abort(&self) -> bool {
        let before = self.transition(|s| {
            if s & (COMPLETE | ABORTED) != 0 {
                None
            } else if s & (RUNNING | SCHEDULED) != 0 {
                Some(s | ABORTED) // whoever runs it next (or now) sees the bit
            } else {
                Some(s | ABORTED | SCHEDULED)
            }
        });
        matches!(before, Ok(s) if s & (RUNNING | SCHEDULED) == 0)
    }

    /// Shutdown: take the future away from any queue (set `RUNNING`), unless
    /// a thread is polling it right now (then mark it `ABORTED`, and that
    /// thread drops it after its poll) or it is already complete.
    fn claim_for_shutdown(&self) -> bool {
        let before = self.transition(|s| {
            if s & COMPLETE != 0 {
                None
            } else if s & RUNNING != 0 {
                Some(s | ABORTED)
            } else {
                Some((s & !SCHEDULED) | RUNNING | ABORTED)
            }
        });
        matches!(before, Ok(s) if s & RUNNING == 0)
    }

    /// Notes that a slow poll was reported; `true` the first time.
    fn first_slow_report(&self) -> bool {
        self.0.fetch_or(SLOW_REPORTED, Ordering::Relaxed) & SLOW_REPORTED == 0
    }
}

// ANCHOR: task_cell
/// A spawned future and everything the runtime keeps for it.
pub(crate) struct TaskCell<F: Future, S> {
    /// The [`state`] bits.
    state: State,
    /// Its place in the runtime's list of tasks that have waited (a slab
    /// key), or [`UNLISTED`]. 32 bits, next to the 32-bit state: the two
    /// share one 8-byte word. Written only by the thread holding `RUNNING`.
    key: AtomicU32,
    /// For traces and errors.
    id: TaskId,
    /// Where `spawn` was called (`#[track_caller]`), for the slow-poll
    /// report and the trace: a pointer to a constant the compiler wrote.
    spawned_at: &'static Location<'static>,
    /// The runtime it belongs to: a wake pushes the task into its queues.
    scheduler: Arc<S>,
    /// The future; `None` once it finished or was dropped. Only the thread
    /// holding `RUNNING` touches it, which is why an `UnsafeCell` is enough.
    future: UnsafeCell<Option<F>>,
    /// The result, until the `JoinHandle` takes it.
    join: JoinSlot<F::Output>,
}
// ANCHOR_END: task_cell

// SAFETY: `TaskCell` is shared between threads through `Arc` (queues, wakers,
// the JoinHandle). Its fields are atomics, plain data, an `Arc<S>` (`S` is
// `Send + Sync` by `Schedule`'s bound), a mutex-protected slot (`JoinSlot<T>`
// is `Sync` when `T: Send`), and the `UnsafeCell` future, which the `RUNNING`
// bit gives to one thread at a time (the compare-and-swap that sets it is
// the lock). A future touched by one thread at a time, possibly a different
// one each poll, needs to be `Send`, not `Sync`.
unsafe impl<F: Future + Send, S: Schedule> Sync for TaskCell<F, S> where F::Output: Send {}

impl<F, S> TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// A new task, already `SCHEDULED` (its first poll is due), as the queue
    /// entry and the handle: two references to one allocation.
    pub(crate) fn create(
        future: F,
        id: TaskId,
        spawned_at: &'static Location<'static>,
        scheduler: Arc<S>,
    ) -> (Task, JoinHandle<F::Output>) {
        let cell = Arc::new(TaskCell {
            state: State(AtomicU32::new(SCHEDULED)),
            key: AtomicU32::new(UNLISTED),
            id,
            spawned_at,
            scheduler,
            future: UnsafeCell::new(Some(future)),
            join: JoinSlot::new(),
        });
        let task: Task = Arc::clone(&cell) as Task;
        (task, JoinHandle::new(cell))
    }

    // ANCHOR: poll_future
    /// Polls the future once.
    fn poll_future(&self, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the caller set `RUNNING`, so no other thread touches the
        // future until we clear it (see the `state` rules).
        let future = unsafe { &mut *self.future.get() };
        let Some(future) = future.as_mut() else {
            unreachable!("{}: a task that is not COMPLETE still has its future", self.id)
        };
        // SAFETY: pinning: the future lives inside this task's `Arc`
        // allocation, which never moves, and it is never moved out of it:
        // it stays there until `drop_future` drops it in place.
        let future = unsafe { Pin::new_unchecked(future) };
        future.poll(cx)
    }
    // ANCHOR_END: poll_future

    // ANCHOR: waker_ref
    /// The waker `run` polls with, borrowing `self`'s reference count.
    ///
    /// The plain way is `Waker::from(Arc::clone(self))`: one more reference
    /// for the waker, given back when it is dropped after the poll. That is
    /// two atomic operations on every poll, for a waker that lives exactly
    /// as long as the poll, while `run` already holds a reference for that
    /// long. So this waker borrows that reference: it is built from a copy
    /// of `self`'s pointer without taking a count, and never dropped
    /// (`ManuallyDrop`), so it never gives one back. A future that wants to
    /// keep the waker clones it, and the clone takes a count of its own as
    /// usual.
    fn waker_ref(self: &Arc<Self>) -> ManuallyDrop<Waker> {
        // SAFETY: `ptr::read` copies the `Arc` (its one pointer) without
        // touching the count: for now two `Arc` values stand for the single
        // strong reference `self` holds, which is sound as long as only one
        // of them is ever dropped. The copy is never dropped: `Waker::from`
        // turns it into a raw pointer with `Arc::into_raw` (so the `Wake`
        // vtable's `Arc::from_raw` calls get a pointer from `into_raw`, as
        // `from_raw` requires), and that waker sits in `ManuallyDrop`, so no
        // count is given back for it. The allocation outlives the waker: the
        // caller holds `self` for the whole poll, and the future is only lent
        // `&Waker` (it can clone it, taking a count of its own, or wake by
        // reference; it can neither take nor drop this one). futures-task's
        // `WakerRef::new` copies a `Waker` the same way.
        let copy: Arc<Self> = unsafe { std::ptr::read(self) };
        ManuallyDrop::new(Waker::from(copy))
    }
    // ANCHOR_END: waker_ref

    /// Drops the future in place. `Err` with the panic payload if its `drop` panicked.
    fn drop_future(&self) -> Result<(), Box<dyn std::any::Any + Send>> {
        panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the caller holds `RUNNING` (or is the last owner), so
            // nobody else touches the future; writing `None` drops it where it is.
            unsafe { *self.future.get() = None };
        }))
    }

    /// The end of the task: drop the future, mark it `COMPLETE`, leave the
    /// runtime's list, hand the result to the `JoinHandle`.
    fn finish(self: Arc<Self>, result: Result<F::Output, JoinError>) {
        let result = match self.drop_future() {
            Ok(()) => result,
            Err(payload) => Err(JoinError::panicked(self.id, &*payload)),
        };
        self.state.complete();
        let key = self.key.load(Ordering::Relaxed);
        self.scheduler.done((key != UNLISTED).then_some(key));
        if let Some(tracer) = &self.scheduler.poll_settings().tracer {
            tracer.event(
                self.id,
                match &result {
                    Ok(_) => Event::Ready,
                    Err(e) if e.is_panic() => Event::Panicked(e.panic_message().unwrap_or_default().to_string()),
                    Err(e) if e.is_aborted() => Event::Aborted,
                    Err(_) => Event::ShutDown,
                },
            );
        }
        if let Some(unread) = self.join.finish(result) {
            // Detached: nobody reads the output. Its drop runs here; a panic
            // in it must not take the executor thread down.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(unread)));
        }
    }

    // ANCHOR: slow_poll
    /// One poll took `took`, over the runtime's slow-poll threshold: the
    /// task held its thread, and every other task on it, that long. Say
    /// which task, where it was spawned and for how long: on stderr the first
    /// time (once per task is enough to find it), in the trace every time.
    fn slow_poll(&self, took: Duration, threshold: Duration) {
        let reported = self.state.first_slow_report();
        if let Some(tracer) = &self.scheduler.poll_settings().tracer {
            tracer.event(self.id, Event::SlowPoll { took, reported });
        }
        if reported {
            let line = |text: &str| eprintln!("{}", ch01_os_threads::trace::line("runtime", text));
            line(&format!(
                "SLOW POLL: {} held its thread for {:.1} ms (the threshold is {} ms),",
                self.id,
                took.as_secs_f64() * 1e3,
                threshold.as_millis()
            ));
            line(&format!("  and every other task on that thread waited. It was spawned at {}:", self.spawned_at));
            line("  between two .await points it computes or blocks. Move such work to spawn_blocking,");
            line("  or let the others run now and then (coop::yield_now). Reported once per task.");
        }
    }
    // ANCHOR_END: slow_poll
}

impl<F, S> Schedulable for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    fn id(&self) -> TaskId {
        self.id
    }

    // ANCHOR: run
    fn run(self: Arc<Self>) {
        // 1. SCHEDULED -> RUNNING: from here on, the future is ours.
        let Ok(before) = self.state.start_poll() else {
            return; // shut down while it sat in the queue: nothing to do
        };
        if before & ABORTED != 0 {
            let error = JoinError::aborted(self.id);
            return self.finish(Err(error));
        }
        let settings = self.scheduler.poll_settings();
        if let Some(tracer) = &settings.tracer {
            tracer.event(self.id, Event::Polled(crate::trace::thread_name()));
        }

        // 2. Poll, with a waker that is this very task: if the future keeps
        //    it and something calls `wake()`, this task goes back in a queue.
        //    The poll gets the runtime's cooperative budget, and is timed if
        //    the runtime reports slow polls. A panic is caught here, so it
        //    ends this task and nothing else.
        let waker = self.waker_ref();
        let mut cx = Context::from_waker(&waker);
        let started = settings.slow_poll.map(|_| Instant::now());
        let polled = {
            // Noted for `current_id` and for the trace's "woken by task N".
            let _running = WakeSource::Task(self.id).enter();
            coop::with_budget(settings.budget, || panic::catch_unwind(AssertUnwindSafe(|| self.poll_future(&mut cx))))
        };
        if let (Some(threshold), Some(started)) = (settings.slow_poll, started) {
            let took = started.elapsed();
            if took >= threshold {
                self.slow_poll(took, threshold);
            }
        }

        // 3. Where it goes next.
        match polled {
            Ok(Poll::Pending) => {
                if let Some(tracer) = &settings.tracer {
                    tracer.event(self.id, Event::Pending);
                }
                // The first wait: list it, so shutdown can reach it in no queue.
                if self.key.load(Ordering::Relaxed) == UNLISTED {
                    let key = self.scheduler.list(Arc::clone(&self) as Task);
                    self.key.store(key, Ordering::Relaxed);
                }
                match self.state.end_pending() {
                    AfterPending::Wait => {} // the waker it kept will bring it back
                    AfterPending::Reschedule => self.schedule(),
                    AfterPending::Abort => {
                        let error = JoinError::aborted(self.id);
                        self.finish(Err(error));
                    }
                }
            }
            Ok(Poll::Ready(output)) => self.finish(Ok(output)),
            Err(payload) => {
                let error = JoinError::panicked(self.id, &*payload);
                self.finish(Err(error));
            }
        }
    }
    // ANCHOR_END: run

    fn shut_down(self: Arc<Self>) {
        if self.state.claim_for_shutdown() {
            let error = JoinError::shutdown(self.id);
            self.finish(Err(error));
        }
    }
}

// ANCHOR: wake
/// Waking a task: if it was idle, mark it `SCHEDULED` and put it in its
/// runtime's run queue. `std` builds the `Waker` vtable from these two
/// methods (see [`crate::waker`] for the same thing written out by hand).
impl<F, S> Wake for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    fn wake(self: Arc<Self>) {
        match self.state.wake() {
            Woken::Queue => {
                self.traced_wake();
                self.schedule(); // this waker's reference becomes the queue entry
            }
            Woken::WhileRunning => self.traced_wake(),
            Woken::Nothing => {}
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.wake() {
            Woken::Queue => {
                self.traced_wake();
                Arc::clone(self).schedule(); // the queue needs a reference of its own
            }
            Woken::WhileRunning => self.traced_wake(),
            Woken::Nothing => {}
        }
    }
}
// ANCHOR_END: wake

impl<F, S> TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// Hands this reference to the task (just marked `SCHEDULED`) to a run
    /// queue of its runtime: this thread's own queue if it runs that
    /// runtime, else the shared one.
    fn schedule(self: Arc<Self>) {
        if let Err(task) = S::schedule_local(Arc::as_ptr(&self.scheduler), self) {
            // `task` moves into the queue, where another thread may run it,
            // finish it and drop it, and with it perhaps the last reference
            // to the runtime: this one keeps the runtime alive for the call.
            let scheduler = Arc::clone(&task.scheduler);
            scheduler.schedule(task);
        }
    }

    /// A wake changed the task's state: trace it, naming who woke it.
    fn traced_wake(&self) {
        if let Some(tracer) = &self.scheduler.poll_settings().tracer {
            tracer.woken(self.id);
        }
    }
}

impl<F, S> Joinable<F::Output> for TaskCell<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    fn id(&self) -> TaskId {
        self.id
    }

    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        self.join.poll_result(cx)
    }

    fn detach(&self) -> Option<Result<F::Output, JoinError>> {
        self.join.detach()
    }

    fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    fn abort(self: Arc<Self>) {
        if self.state.abort() {
            self.schedule();
        }
    }
}
