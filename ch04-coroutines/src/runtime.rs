//! The executor, which here also plays the reactor.
//!
//! A runtime has two jobs (chapter 5 gives each its own piece):
//!
//! - the **executor** decides which task runs and calls its `poll`;
//! - the **reactor** waits for the OS to report events and makes sure the
//!   task that waits for each one gets polled again.
//!
//! Here both are [`Executor`]: it polls every task that can make progress,
//! and when none can, it blocks in ch03's [`Poll::poll`] (the reactor's
//! `epoll_wait`) until a socket is ready. That is the whole cycle:
//!
//! ```text
//!   poll: run tasks until each returns NotReady (or Ready)
//!   wait: every task is waiting -> sleep in epoll_wait (no CPU used)
//!   wake: epoll returns events; each event's token names the task to poll
//! ```
//!
//! **How does an event find its task without a `Waker`?** Through a side
//! table. While the executor polls task 3, it notes "task 3 is running" in a
//! thread-local; when a leaf future registers a socket it gets a fresh token,
//! and the table records "token 7 belongs to task 3". When `epoll` reports
//! token 7, the executor polls task 3. This only works because the executor,
//! the event queue and every future live on one thread and know about each
//! other; a `Waker` (chapter 5) is the general version of the same note.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use ch03_epoll::poll::{Events, Interest, Poll, Token};

use crate::future::{Future, PollState};
use crate::log::Log;

thread_local! {
    /// The event queue of the executor running on this thread, if any.
    ///
    /// Leaf futures reach it from `poll(&mut self)`, which has no argument to
    /// carry it (that is the `Context` `std` adds). One per thread.
    static REACTOR: RefCell<Option<Reactor>> = const { RefCell::new(None) };
}

/// What the executor shares with the leaf futures it polls.
struct Reactor {
    /// Chapter 3's event queue (an `epoll` instance).
    poll: Poll,
    /// The next token to hand out; tokens are never reused, so a late event
    /// for a closed socket can never be mistaken for a new one.
    next_token: usize,
    /// Which task registered each token: our stand-in for a `Waker`.
    owners: HashMap<Token, usize>,
    /// The task being polled right now (`None` between polls).
    current_task: Option<usize>,
    /// The executor's log, so leaf futures can print `[http]` lines.
    log: Log,
}

/// Runs `f` with the reactor of the executor running on this thread.
fn with_reactor<R>(f: impl FnOnce(&mut Reactor) -> io::Result<R>) -> io::Result<R> {
    // `try_with`: a future dropped while the thread exits may find the
    // thread-local already gone; that is "no executor", not a crash.
    let outside = || {
        io::Error::other(
            "a leaf future was polled outside an Executor: run it with Executor::block_on or Executor::run",
        )
    };
    REACTOR
        .try_with(|cell| match cell.borrow_mut().as_mut() {
            Some(reactor) => f(reactor),
            None => Err(outside()),
        })
        .unwrap_or_else(|_| Err(outside()))
}

// ANCHOR: register
/// Registers `source` with the running executor's event queue for the task
/// being polled, and returns its new token and a log for `[component]` lines.
///
/// Leaf futures call this from `poll`; outside an executor's poll it fails
/// (there would be no task to wake).
pub fn register(source: &impl AsRawFd, interest: Interest, component: &str) -> io::Result<(Token, Log)> {
    with_reactor(|reactor| {
        let task = reactor
            .current_task
            .ok_or_else(|| io::Error::other("a leaf future registered a socket while no task was being polled"))?;
        let token = Token(reactor.next_token);
        reactor.next_token += 1;
        reactor.poll.registry().register(source, token, interest)?;
        reactor.owners.insert(token, task);
        Ok((token, reactor.log.named(component)))
    })
}

/// How many sockets the running executor's event queue watches right now
/// (tests use it to see a cancelled future deregister).
pub fn registered() -> io::Result<usize> {
    with_reactor(|reactor| Ok(reactor.owners.len()))
}

/// Stops watching `source` and forgets which task `token` belonged to.
pub fn deregister(source: &impl AsRawFd, token: Token) -> io::Result<()> {
    with_reactor(|reactor| {
        reactor.owners.remove(&token);
        reactor.poll.registry().deregister(source)
    })
}
// ANCHOR_END: register

/// Counts of what the executor did: the proof that it does not busy-loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to a task's `poll`.
    pub polls: u64,
    /// Times it blocked in `Poll::poll` because every task was waiting.
    pub waits: u64,
    /// Events `epoll` returned in all those waits.
    pub events: u64,
}

/// Polls tasks, and blocks in `epoll_wait` when all of them are waiting.
///
/// One per thread at a time (it owns the thread's event queue). Each task is
/// polled once at the start and then only after an event for a socket it
/// registered, so `polls <= tasks + events`: no busy loop.
pub struct Executor {
    /// Writes the `[executor]` lines.
    log: Log,
    /// Room for what one `epoll_wait` returns.
    events: Events,
    /// The longest single wait before giving up with `TimedOut`, so a lost
    /// event is an error instead of a hang.
    wait_timeout: Duration,
    /// What happened so far, over every `run`.
    stats: Stats,
}

impl Executor {
    /// The longest delay the delay server accepts, plus ten seconds.
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(70);

    /// Creates the executor and this thread's event queue. `log` receives the
    /// `[executor]` lines and, through [`register`], the leaf futures' lines.
    ///
    /// Fails if another `Executor` is alive on this thread.
    pub fn new(log: &Log) -> io::Result<Executor> {
        let poll = Poll::new()?;
        REACTOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "an Executor is already running on this thread (one event queue per thread)",
                ));
            }
            *slot = Some(Reactor { poll, next_token: 0, owners: HashMap::new(), current_task: None, log: log.clone() });
            Ok(())
        })?;
        Ok(Executor {
            log: log.named("executor"),
            events: Events::with_capacity(1024),
            wait_timeout: Self::DEFAULT_WAIT_TIMEOUT,
            stats: Stats::default(),
        })
    }

    /// Changes the longest single wait (default [`Self::DEFAULT_WAIT_TIMEOUT`]).
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Executor {
        self.wait_timeout = timeout;
        self
    }

    /// What the executor did so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Runs one future to completion and returns its output.
    pub fn block_on<F: Future>(&mut self, future: F) -> io::Result<F::Output> {
        let mut output = None;
        self.run(vec![Box::new(StoreOutput { future, slot: &mut output })])?;
        output.ok_or_else(|| io::Error::other("block_on: the future finished without an output"))
    }

    // ANCHOR: run
    /// Runs every task to completion: the poll / wait / wake loop.
    pub fn run<'a>(&mut self, mut tasks: Vec<Box<dyn Future<Output = ()> + 'a>>) -> io::Result<()> {
        let mut finished = vec![false; tasks.len()];
        let mut waiting = tasks.len();
        // Tasks to poll now. At the start, every task: nothing has run yet.
        let mut to_poll: Vec<usize> = (0..tasks.len()).collect();
        let mut queued = vec![true; tasks.len()];

        loop {
            // Poll phase: run each task that can make progress until it
            // returns NotReady (it registered a socket and is waiting on it)
            // or Ready (it is done and is never polled again).
            for task in to_poll.drain(..) {
                queued[task] = false;
                if finished[task] {
                    continue; // a late event for a task that is already done
                }
                self.stats.polls += 1;
                if self.log.enabled() {
                    self.log.say(format!("poll task {task} (poll #{})", self.stats.polls));
                }
                set_current_task(Some(task));
                let state = tasks[task].poll();
                set_current_task(None);
                if let PollState::Ready(()) = state {
                    finished[task] = true;
                    waiting -= 1;
                    if self.log.enabled() {
                        self.log.say(format!("task {task} is ready (finished); {waiting} still waiting"));
                    }
                }
            }
            if waiting == 0 {
                break;
            }

            // Wait phase: nobody can make progress, so sleep in epoll_wait
            // until a socket is ready. No CPU is used while we wait.
            let registered = with_reactor(|reactor| Ok(reactor.owners.len()))?;
            if registered == 0 {
                return Err(io::Error::other(format!(
                    "{waiting} task(s) returned NotReady but no socket is registered: nothing could ever wake them"
                )));
            }
            if self.log.enabled() {
                self.log.say(format!("{waiting} task(s) waiting on {registered} socket(s): wait in Poll::poll"));
            }
            self.stats.waits += 1;
            let events = &mut self.events;
            let timeout = self.wait_timeout;
            with_reactor(|reactor| reactor.poll.poll(events, Some(timeout)))?;
            if self.events.is_empty() {
                // Say who was waiting on what, so a lost event can be traced.
                let mut owners: Vec<(usize, usize)> =
                    with_reactor(|reactor| Ok(reactor.owners.iter().map(|(token, task)| (token.0, *task)).collect()))?;
                owners.sort_unstable();
                owners.truncate(10);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{waiting} task(s) waited {timeout:?} without any event; (token, task) still registered: {owners:?}"
                    ),
                ));
            }

            // Wake phase: each event's token names the task that registered
            // it; that task goes on the list to poll (once, however many of
            // its sockets are ready).
            for event in self.events.iter() {
                self.stats.events += 1;
                let owner = with_reactor(|reactor| Ok(reactor.owners.get(&event.token()).copied()))?;
                let Some(task) = owner else { continue }; // its future already finished and deregistered
                if self.log.enabled() {
                    let (token, flags) = (event.token().0, event.flags().names());
                    self.log.say(format!("wake: token {token} is ready ({flags}) -> task {task}"));
                }
                if !queued[task] {
                    queued[task] = true;
                    to_poll.push(task);
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: run
}

impl Drop for Executor {
    /// Removes this thread's event queue, so a new `Executor` can start.
    fn drop(&mut self) {
        // `try_with`: during thread exit the thread-local may already be gone.
        let _ = REACTOR.try_with(|cell| cell.borrow_mut().take());
    }
}

/// Notes which task is being polled, for [`register`].
fn set_current_task(task: Option<usize>) {
    REACTOR.with(|cell| {
        if let Some(reactor) = cell.borrow_mut().as_mut() {
            reactor.current_task = task;
        }
    });
}

/// The task `block_on` runs: the future, and where to put its output.
struct StoreOutput<'a, F: Future> {
    /// The future being run.
    future: F,
    /// `block_on`'s local variable that receives the output.
    slot: &'a mut Option<F::Output>,
}

impl<F: Future> Future for StoreOutput<'_, F> {
    type Output = ();

    fn poll(&mut self) -> PollState<()> {
        match self.future.poll() {
            PollState::Ready(output) => {
                *self.slot = Some(output);
                PollState::Ready(())
            }
            PollState::NotReady => PollState::NotReady,
        }
    }
}
