//! The single-threaded executor: the poll → wait → wake cycle, on the thread
//! that calls [`Runtime::block_on`](crate::Runtime::block_on).
//!
//! ```text
//!          ┌──────────── poll ────────────┐
//!          │ take a task from a run queue │
//!          │ task.run(): future.poll(cx)  │──── Ready: the JoinHandle gets the output
//!          └──────────────┬───────────────┘
//!                 Pending │ the future left cx.waker() with the reactor,
//!                         │ a timer, a channel, another thread ...
//!          ┌──────────── wait ────────────┐
//!          │ no task to run: sleep        │
//!          │ (no CPU used; see park.rs)   │
//!          └──────────────┬───────────────┘
//!                         │ an event, a timer, another thread calls waker.wake()
//!          ┌──────────── wake ────────────┐
//!          │ schedule(task): push it into │
//!          │ a run queue, wake the thread │──── back to poll
//!          │ if it sleeps                 │
//!          └──────────────────────────────┘
//! ```
//!
//! ## Who gets the CPU
//!
//! An executor decides which task runs next, and a cooperative one cannot
//! take the thread back from a task: it can only choose well between polls.
//! Tasks come from three places, and the loop looks at each at a bounded
//! interval, whatever the others do:
//!
//! - the **local queue**, where wakes made on this thread land (a task that
//!   yields, a task that sends to another): the usual next task;
//! - the **injector**, where wakes from other threads land (the reactor
//!   thread's I/O and timers, `spawn_blocking` jobs, other threads' sends):
//!   taken first every [`INJECTOR_INTERVAL`] polls, even while the local
//!   queue has work. Otherwise two tasks that yield to each other forever
//!   would keep the local queue full, and a timer's wake would wait in the
//!   injector forever;
//! - the **driver**, with [`IoDriver::ExecutorThread`](crate::IoDriver): our
//!   own reactor, whose ready sockets and due timers wake tasks only when
//!   someone turns it. The loop turns it without sleeping every
//!   [`DRIVER_INTERVAL`] polls that ended without a wait, not only when
//!   there is nothing else to do.
//!
//! And `block_on`'s own future is polled, when woken, between two rounds of
//! at most `DRIVER_INTERVAL` tasks.
//!
//! The intervals count polls, and a poll can be long: one that spends its
//! whole cooperative budget did 128 things before it yielded. So after
//! such a poll the loop does not wait for the interval: it takes the
//! injector and turns the driver at once (tokio, likewise, turns its
//! driver before it polls a task that ran out of budget again).
//!
//! Those rules make the *executor* fair between polls. Within one poll the
//! task has the thread: the cooperative budget ([`crate::coop`]) makes the
//! leaf futures of a busy task return `Pending` after a while, and the
//! slow-poll detector reports a poll that computes for too long.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use ch01_os_threads::say;

use crate::coop;
use crate::park::Parker;
use crate::reactor;
use crate::scheduler::{self, Enter, Shared};
use crate::task::Task;
use crate::trace::WakeSource;

/// Default for `Builder::injector_interval`: every this many polls, the
/// loop takes the tasks that other threads woke before the local ones.
///
/// Taking them costs one uncontended lock (tens of nanoseconds) per
/// interval: at 31, about a nanosecond per poll. A wake from the reactor
/// thread then waits for at most 31 polls of busy local tasks (plus one
/// turn of each local task queued ahead of it). tokio's default is the same
/// number (its `global_queue_interval`) for the same job; a prime, so that
/// it rarely falls on the same poll as the driver interval.
pub const INJECTOR_INTERVAL: u32 = 31;

/// Default for `Builder::driver_interval`: after this many polls without a
/// wait, the loop turns its own reactor without sleeping (an `epoll_wait`
/// with a zero timeout, then the due timers).
///
/// A turn is a system call (a few hundred nanoseconds with nothing ready)
/// against a poll of tens of nanoseconds to a few microseconds: every 61
/// polls it costs a few nanoseconds per poll, and a due timer or a ready socket waits for at
/// most 61 polls. tokio's `event_interval` is 61 too; with the reactor
/// thread there is nothing to turn, and the interval only decides how often
/// `block_on`'s future gets its turn.
pub const DRIVER_INTERVAL: u32 = 61;

/// The waker of the future given to `block_on`: a flag, then the same
/// wake-up a task's wake from another thread gets.
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
        self.shared.wake_block_on_thread();
    }
}

// ANCHOR: block_on
/// Runs `future` to completion on this thread, and the runtime's tasks with
/// it: poll what is ready, wait when nothing is, until `future` is ready.
pub(crate) fn block_on<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    let mut parker = ParkerGuard::take(shared);
    let _enter = Enter::new(shared, true);
    let _reactor = parker.reactor().map(|own| reactor::enter(Arc::clone(own))); // for the leaf futures
    // `block_on`'s own future is not a task: its waker sets a flag and wakes
    // this thread. It is pinned on this stack frame, which it never leaves
    // before it is dropped (chapter 6).
    let main = Arc::new(MainWaker { woken: AtomicBool::new(true), shared: Arc::clone(shared) });
    let waker = Waker::from(Arc::clone(&main));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut tick: u32 = 0;
    loop {
        // Poll phase (a): the future given to block_on, when woken.
        if main.woken.swap(false, Ordering::Acquire) {
            let _source = WakeSource::BlockOn.enter();
            let polled = coop::with_budget(shared.settings.budget, || future.as_mut().poll(&mut cx));
            if let Poll::Ready(output) = polled {
                return output;
            }
        }
        // Poll phase (b): up to DRIVER_INTERVAL tasks.
        let mut ran = 0;
        while ran < shared.intervals.driver {
            tick = tick.wrapping_add(1);
            let Some(task) = next_task(shared, tick) else { break };
            task.run();
            ran += 1;
            if coop::take_exhausted() {
                // That poll spent its whole budget: a long one. Let the
                // tasks woken elsewhere, and the driver, in now.
                scheduler::extend_local(shared.take_injected());
                parker.poll_driver();
            }
        }
        if ran == shared.intervals.driver {
            // Busy all along: let the driver in without sleeping, so sockets
            // and timers make progress while tasks are always ready.
            parker.poll_driver();
        } else {
            // Wait phase: nothing left to run.
            wait(shared, &main, &mut parker);
        }
    }
}

/// The next task: the local queue's oldest, except on every
/// `INJECTOR_INTERVAL`-th poll, and whenever the local queue is empty, when
/// the tasks woken by other threads come in first. They are all taken at
/// once (one lock for the lot) and go to the back of the local queue, in
/// order: each task already queued runs once before them, as in one queue.
fn next_task(shared: &Shared, tick: u32) -> Option<Task> {
    if tick.is_multiple_of(shared.intervals.injector) {
        scheduler::extend_local(shared.take_injected());
    }
    if let Some(task) = scheduler::pop_local() {
        return Some(task);
    }
    let mut injected = shared.take_injected();
    let first = injected.pop_front();
    scheduler::extend_local(injected);
    first
}

/// The wait phase: nothing to run, so sleep until a wake. The check and the
/// note "asleep" happen under the injector's lock, so a wake from another
/// thread either sees the note and wakes us, or came before the check and
/// is seen by it (see [`Sleeper`](crate::park::Sleeper)).
fn wait(shared: &Shared, main: &MainWaker, parker: &mut Parker) {
    let in_reactor = parker.reactor().is_some();
    if !shared.prepare_to_sleep(in_reactor, || !main.woken.load(Ordering::Acquire)) {
        return; // a wake came in since we looked
    }
    log_wait(shared, in_reactor);
    parker.park();
    shared.woke_up();
    log_awake(shared, main);
}
// ANCHOR_END: block_on

/// The runtime's [`Parker`], held by the thread inside `block_on` and given
/// back when it leaves (also when `block_on`'s future panics).
struct ParkerGuard<'a> {
    /// Whose parker.
    shared: &'a Shared,
    /// The parker, while we hold it.
    parker: Option<Parker>,
}

impl<'a> ParkerGuard<'a> {
    /// # Panics
    ///
    /// If this thread already runs a runtime (a `block_on` inside a task
    /// would stop that runtime's thread until the inner future finished,
    /// and the tasks it waits for might need that very thread), or if
    /// another thread is inside this runtime's `block_on`: its tasks can
    /// only run on one thread.
    fn take(shared: &'a Shared) -> ParkerGuard<'a> {
        scheduler::assert_outside_runtime();
        let parker = lock(shared).take();
        assert!(
            parker.is_some(),
            "block_on called from two threads at once on a single-threaded runtime (its tasks run on one thread)"
        );
        ParkerGuard { shared, parker }
    }
}

impl std::ops::Deref for ParkerGuard<'_> {
    type Target = Parker;
    fn deref(&self) -> &Parker {
        self.parker.as_ref().unwrap_or_else(|| unreachable!("held from take() to drop"))
    }
}

impl std::ops::DerefMut for ParkerGuard<'_> {
    fn deref_mut(&mut self) -> &mut Parker {
        self.parker.as_mut().unwrap_or_else(|| unreachable!("held from take() to drop"))
    }
}

impl Drop for ParkerGuard<'_> {
    fn drop(&mut self) {
        *lock(self.shared) = self.parker.take();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Option<Parker>> {
    // Nothing panics while this lock is held: a poisoned lock is consistent.
    shared.parker.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `[executor]` line before the wait (`Builder::log_cycle`).
fn log_wait(shared: &Shared, in_reactor: bool) {
    if shared.log_cycle {
        let (place, waiting) =
            if in_reactor { ("wait in our reactor", "waiting") } else { ("park", "waiting to be woken") };
        say!("executor", "nothing to run: {place} ({} task(s) {waiting})", shared.unfinished());
    }
}

/// `[executor]` line after the wait.
fn log_awake(shared: &Shared, main: &MainWaker) {
    if shared.log_cycle {
        let (local, injected) = (scheduler::local_len(), shared.injected());
        let main = if main.woken.load(Ordering::Acquire) { ", block_on's future woken" } else { "" };
        say!("executor", "awake: {local} task(s) woken on this thread, {injected} in the injector{main}");
    }
}
