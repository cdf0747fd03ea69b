//! The per-task timeline: what happened to each task, and who woke it.
//!
//! A runtime built with a [`Tracer`] reports every step of every task:
//!
//! ```text
//! [task 3]        0 ms  spawned at src/main.rs:228:13
//! [task 3]        0 ms  polled on main
//! [task 3]        0 ms  pending
//! [task 3]       51 ms  woken by the reactor (I/O)
//! [task 3]       51 ms  polled on main
//! [task 3]       51 ms  ready
//! ```
//!
//! Lines are printed as they happen (`--trace`), recorded for a picture
//! (`--trace-svg FILE`, drawn by [`svg`](crate::svg)), or both.
//!
//! **Who woke it?** A waker does not say who called it, so each thread notes
//! what it is doing in a thread-local [`WakeSource`]: the reactor's thread
//! sets "reactor" while it wakes the readers and writers of ready sockets and
//! "timer" while it fires timers; an executor sets "task N" while it polls
//! task N. A wake from a thread that set nothing is "another thread".

use std::cell::Cell;
use std::panic::Location;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::id::TaskId;

/// One step of a task's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `spawn` was called here; the task's first poll is due.
    Spawned(&'static Location<'static>),
    /// `spawn_blocking` was called here: a job for the blocking pool (its
    /// "poll" is the closure running on a pool thread).
    SpawnedBlocking(&'static Location<'static>),
    /// An executor thread (named here) started polling it.
    Polled(String),
    /// The poll returned `Pending`: it waits for a wake.
    Pending,
    /// The poll that just ended took this long, over the runtime's
    /// slow-poll threshold: the task held its thread all that time.
    SlowPoll {
        /// How long the poll took.
        took: Duration,
        /// Whether it was reported on stderr (only a task's first is).
        reported: bool,
    },
    /// A waker put it back in a run queue (or asked for one more poll).
    Woken(WokenBy),
    /// The poll returned `Ready`: finished.
    Ready,
    /// The poll panicked (message); the panic was caught.
    Panicked(String),
    /// `JoinHandle::abort` dropped its future.
    Aborted,
    /// The runtime shut down and dropped its future.
    ShutDown,
}

/// Who called the waker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WokenBy {
    /// The reactor, for a socket that became ready.
    Reactor,
    /// The reactor, for a timer whose deadline passed.
    Timer,
    /// Another task, while it was being polled (e.g. it sent on a channel).
    Task(TaskId),
    /// The future passed to `block_on`, while it was being polled.
    BlockOn,
    /// Code on some other thread (named here), e.g. a `spawn_blocking` job.
    Thread(String),
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Spawned(at) => write!(f, "spawned at {at}"),
            Event::SpawnedBlocking(at) => write!(f, "spawned as a blocking job at {at}"),
            Event::SlowPoll { took, reported } => {
                let ms = took.as_secs_f64() * 1e3;
                let stderr = if *reported { " (reported on stderr)" } else { "" };
                write!(f, "SLOW POLL: held its thread for {ms:.1} ms without returning{stderr}")
            }
            Event::Polled(thread) => write!(f, "polled on {thread}"),
            Event::Pending => write!(f, "pending"),
            Event::Woken(WokenBy::Reactor) => write!(f, "woken by the reactor (I/O)"),
            Event::Woken(WokenBy::Timer) => write!(f, "woken by the reactor (a timer)"),
            Event::Woken(WokenBy::Task(task)) => write!(f, "woken by {task}"),
            Event::Woken(WokenBy::BlockOn) => write!(f, "woken by block_on's future"),
            Event::Woken(WokenBy::Thread(name)) if name == UNNAMED => write!(f, "woken by {name}"),
            Event::Woken(WokenBy::Thread(name)) => write!(f, "woken by thread {name}"),
            Event::Ready => write!(f, "ready"),
            Event::Panicked(message) => write!(f, "panicked: {message} (caught; the runtime carries on)"),
            Event::Aborted => write!(f, "aborted: its future was dropped"),
            Event::ShutDown => write!(f, "dropped: its runtime shut down"),
        }
    }
}

/// What the current thread is doing, for [`WokenBy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakeSource {
    /// Nothing noted: a wake from here is "another thread".
    Unknown,
    /// The reactor is waking the wakers of ready sockets.
    Reactor,
    /// The reactor is firing timers.
    Timer,
    /// An executor is polling this task.
    Task(TaskId),
    /// `block_on` is polling its future.
    BlockOn,
}

thread_local! {
    /// What this thread is doing right now (see the module docs).
    static SOURCE: Cell<WakeSource> = const { Cell::new(WakeSource::Unknown) };
}

/// Puts the previous [`WakeSource`] back when dropped.
#[derive(Debug)]
pub(crate) struct SourceGuard {
    /// What was there before.
    previous: WakeSource,
}

impl WakeSource {
    /// Notes `self` as this thread's activity until the guard is dropped.
    pub(crate) fn enter(self) -> SourceGuard {
        SourceGuard { previous: SOURCE.with(|source| source.replace(self)) }
    }

    /// The task this thread is polling, if any.
    pub(crate) fn current_task() -> Option<TaskId> {
        match SOURCE.with(Cell::get) {
            WakeSource::Task(task) => Some(task),
            _ => None,
        }
    }

    /// Who is waking, seen from the current thread.
    fn current() -> WokenBy {
        match SOURCE.with(Cell::get) {
            WakeSource::Reactor => WokenBy::Reactor,
            WakeSource::Timer => WokenBy::Timer,
            WakeSource::Task(task) => WokenBy::Task(task),
            WakeSource::BlockOn => WokenBy::BlockOn,
            WakeSource::Unknown => WokenBy::Thread(thread_name()),
        }
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        SOURCE.with(|source| source.set(self.previous));
    }
}

/// What [`thread_name`] says for a thread without a name.
const UNNAMED: &str = "an unnamed thread";

/// The current thread's name, or "an unnamed thread" if it has none.
pub(crate) fn thread_name() -> String {
    std::thread::current().name().unwrap_or(UNNAMED).to_string()
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When, since the trace clock started (ch01's `trace::start`).
    pub at: Duration,
    /// Which task.
    pub task: TaskId,
    /// What happened.
    pub event: Event,
}

/// Where each task was spawned, from a trace's records: the names the
/// trace's rows go by (`task 3 (main.rs:228)`, `blocking job 9 (main.rs:301)`).
pub fn task_names(records: &[Record]) -> std::collections::BTreeMap<TaskId, String> {
    let short = |at: &Location<'_>| {
        let file = at.file().rsplit('/').next().unwrap_or(at.file());
        format!("{file}:{}", at.line())
    };
    records
        .iter()
        .filter_map(|record| match record.event {
            Event::Spawned(at) => Some((record.task, format!("{} ({})", record.task, short(at)))),
            Event::SpawnedBlocking(at) => {
                Some((record.task, format!("blocking job {} ({})", record.task.0, short(at))))
            }
            _ => None,
        })
        .collect()
}

/// Collects (and/or prints) task events. Cloning shares the same record, so
/// several runtimes can report to one timeline.
#[derive(Debug, Clone)]
pub struct Tracer {
    /// The shared part.
    inner: Arc<Inner>,
}

/// The shared part of a [`Tracer`].
#[derive(Debug)]
struct Inner {
    /// Print each event as a `[task N]` line when it happens.
    print: bool,
    /// Keep each event for [`Tracer::records`] (and the SVG).
    record: bool,
    /// The events so far, in the order they happened.
    records: Mutex<Vec<Record>>,
}

impl Tracer {
    /// A tracer that prints `[task N]` lines (`print`), keeps the events
    /// (`record`), or both.
    pub fn new(print: bool, record: bool) -> Tracer {
        Tracer { inner: Arc::new(Inner { print, record, records: Mutex::new(Vec::new()) }) }
    }

    /// Notes one event of one task.
    pub(crate) fn event(&self, task: TaskId, event: Event) {
        let at = ch01_os_threads::trace::elapsed();
        if self.inner.print {
            ch01_os_threads::say!(format!("task {}", task.0), "{event}");
        }
        if self.inner.record {
            self.inner.records.lock().unwrap_or_else(PoisonError::into_inner).push(Record { at, task, event });
        }
    }

    /// Notes a wake of `task`, naming who woke it.
    pub(crate) fn woken(&self, task: TaskId) {
        self.event(task, Event::Woken(WakeSource::current()));
    }

    /// Every recorded event, in order.
    pub fn records(&self) -> Vec<Record> {
        self.inner.records.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
