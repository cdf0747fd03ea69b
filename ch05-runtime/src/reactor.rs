//! The reactor: one thread that waits for the OS and calls wakers.
//!
//! It owns a `mio::Poll` (epoll on Linux, as in chapter 3) and two tables:
//!
//! - **sources**: `Token → ScheduledIo`, one entry per registered socket,
//!   holding the *latest* waker of the task reading it and of the task
//!   writing it. A leaf future that gets `WouldBlock` leaves `cx.waker()`
//!   there (replacing the one from its previous poll: the future may have
//!   moved to another task, even another executor, since).
//! - **timers**: a min-heap of deadlines with their wakers ([`crate::timers`]).
//!   The earliest deadline is the `epoll_wait` timeout; when a new timer is
//!   earlier than the one the reactor sleeps for, a `mio::Waker` (an
//!   `eventfd`) interrupts the wait so it can sleep for less.
//!
//! Its loop is the *wait* half of the cycle, and the start of *wake*:
//!
//! ```text
//! loop {
//!     timeout = earliest timer - now            (or none: wait forever)
//!     epoll_wait(timeout)                       the thread sleeps here
//!     for each event: token → ScheduledIo → take its reader's / writer's waker, wake()
//!     for each timer due: take its waker, wake()
//! }
//! ```
//!
//! It never learns which task or which executor a waker belongs to.
//!
//! The process has one reactor on its own thread, named `reactor`, started on
//! first use: the design of the book this course follows, where any executor
//! can use it. A single-threaded runtime can instead own a reactor and wait
//! in its `epoll_wait` itself when it has nothing to run
//! ([`IoDriver::ExecutorThread`](crate::IoDriver), tokio's design), which
//! saves the hop from the reactor's thread to the executor's: the same loop
//! body ([`Reactor::turn`]) runs on a different thread. A socket or timer
//! remembers which reactor it registered with ([`Handle`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::say;
use mio::event::Source;
use mio::{Events, Interest, Token};

use crate::coop;
use crate::timers::{TimerKey, Timers};
use crate::trace::WakeSource;

/// The token of the reactor's own `mio::Waker`.
const WAKE_TOKEN: Token = Token(usize::MAX);

/// Room for this many events per `epoll_wait`; more simply wait for the next call.
const EVENTS_CAPACITY: usize = 1024;

/// The process's reactor (see the module docs).
#[derive(Debug)]
pub struct Reactor {
    /// Registers sources with the `Poll` the reactor thread waits on; usable
    /// from any thread.
    registry: mio::Registry,
    /// Interrupts the reactor's `epoll_wait` (an `eventfd` underneath).
    waker: mio::Waker,
    /// Token → the wakers waiting on that source.
    sources: Mutex<Sources>,
    /// Pending timers, and what the reactor thread is doing.
    timers: Mutex<TimerState>,
}

/// The sources table.
#[derive(Debug)]
struct Sources {
    /// Every registered source's wakers, by token.
    map: HashMap<Token, Arc<ScheduledIo>>,
    /// The next token to hand out. Tokens are never reused, so a late event
    /// for a closed socket can never wake the reader of a new one.
    next_token: usize,
}

/// The two directions a task can wait on a socket in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Waiting for data (or a connection to accept, or end of file).
    Read,
    /// Waiting for room to write (or for a connect to finish).
    Write,
}

/// What the reactor keeps for one source.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    /// Reader and writer, behind one small lock.
    state: Mutex<[Waiter; 2]>,
}

/// One direction of a [`ScheduledIo`].
#[derive(Debug, Default)]
struct Waiter {
    /// How many events the reactor delivered in this direction so far. A
    /// future notes it before it tries the syscall; if it changed by the time
    /// the syscall says `WouldBlock`, an event slipped in between and the
    /// future tries again instead of waiting for an event that already came.
    events: u64,
    /// The waker of the task waiting in this direction, if one is.
    waker: Option<Waker>,
}

/// The timer table, and what the reactor thread is doing, behind one lock.
#[derive(Debug)]
struct TimerState {
    /// Pending timers: deadline → waker.
    table: Timers,
    /// What the reactor thread is doing, to know if a new timer must wake it.
    reactor: ReactorWait,
}

/// What the reactor thread is doing, as far as timers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReactorWait {
    /// Not waiting: it will look at the timers before it waits again.
    Busy,
    /// In `epoll_wait` until this deadline (or an event).
    Until(Instant),
    /// In `epoll_wait` with no timeout.
    Forever,
}

/// Whether to print `[reactor]` lines (off unless a demo asks).
static LOG: AtomicBool = AtomicBool::new(false);

/// Turns the `[reactor]` lines on or off (for the whole process: there is
/// one reactor).
pub fn log_events(on: bool) {
    LOG.store(on, Ordering::Relaxed);
}

fn logging() -> bool {
    LOG.load(Ordering::Relaxed)
}

static REACTOR: OnceLock<Reactor> = OnceLock::new();
/// Held while the reactor starts, so only one thread starts it.
static STARTING: Mutex<()> = Mutex::new(());

/// The waiting half of a reactor: mio's `Poll`, room for its events, and the
/// wakers of one round. Owned by the one thread that drives the reactor.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The epoll instance.
    poll: mio::Poll,
    /// Room for what one `epoll_wait` returns.
    events: Events,
    /// Wakers to call after a round (collected first, called outside the locks).
    to_wake: Vec<Waker>,
}

impl Reactor {
    /// A reactor and its driver, not yet driven by anyone.
    fn new() -> io::Result<(Reactor, Driver)> {
        let poll = mio::Poll::new()?;
        let reactor = Reactor {
            registry: poll.registry().try_clone()?,
            waker: mio::Waker::new(poll.registry(), WAKE_TOKEN)?,
            sources: Mutex::new(Sources { map: HashMap::new(), next_token: 0 }),
            timers: Mutex::new(TimerState { table: Timers::default(), reactor: ReactorWait::Busy }),
        };
        Ok((reactor, Driver { poll, events: Events::with_capacity(EVENTS_CAPACITY), to_wake: Vec::new() }))
    }

    /// The process's reactor, started (with its thread) on first use.
    pub fn get() -> io::Result<&'static Reactor> {
        if let Some(reactor) = REACTOR.get() {
            return Ok(reactor);
        }
        let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reactor) = REACTOR.get() {
            return Ok(reactor); // another thread started it while we waited
        }
        let (reactor, driver) = Reactor::new()?;
        // The thread first waits for `REACTOR` to be set, so if starting it
        // fails, nothing was set and the next call tries again.
        thread::Builder::new().name("reactor".into()).spawn(move || REACTOR.wait().run(driver))?;
        Ok(REACTOR.get_or_init(|| reactor))
    }

    /// A reactor of a runtime's own, driven by that runtime's thread.
    pub(crate) fn owned() -> io::Result<(Arc<Reactor>, Driver)> {
        let (reactor, driver) = Reactor::new()?;
        Ok((Arc::new(reactor), driver))
    }

    /// The process's reactor, if it was started.
    fn started() -> Option<&'static Reactor> {
        REACTOR.get()
    }

    fn sources(&self) -> MutexGuard<'_, Sources> {
        // Wakers are called outside these locks, so nothing panics while
        // they are held; a poisoned lock still guards consistent tables.
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timers(&self) -> MutexGuard<'_, TimerState> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reactor thread: one round after another, forever.
    fn run(&self, mut driver: Driver) {
        loop {
            self.turn(&mut driver, None);
        }
    }

    // ANCHOR: reactor_loop
    /// One round: wait in `epoll_wait` until an event, the earliest timer or
    /// an [`interrupt`](Self::interrupt) (but no longer than `max_wait`, if
    /// given), then wake every task with progress to make. The reactor
    /// thread does this forever; a runtime that owns its reactor does it
    /// whenever it has nothing to run, and, with a `max_wait` of zero, now
    /// and then while it has.
    pub(crate) fn turn(&self, driver: &mut Driver, max_wait: Option<Duration>) {
        // Wait phase: sleep in epoll_wait until an event or the earliest timer.
        let timeout = self.next_timeout(max_wait);
        if let Err(e) = driver.poll.poll(&mut driver.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                // Not expected on Linux (EBADF, EFAULT, EINVAL are bugs);
                // say it, and do not spin if it repeats.
                eprintln!("[reactor] epoll_wait failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        self.timers().reactor = ReactorWait::Busy;

        // Wake phase, sockets: token → ScheduledIo → the wakers waiting on it.
        for event in driver.events.iter() {
            if event.token() == WAKE_TOKEN {
                continue; // only interrupted the wait (a nearer timer, or work for its executor)
            }
            let Some(io) = self.sources().map.get(&event.token()).cloned() else {
                continue; // deregistered since: nobody to wake
            };
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            let writable = event.is_writable() || event.is_write_closed() || event.is_error();
            let woke = io.ready(readable, writable, &mut driver.to_wake);
            if logging() {
                say!("reactor", "token {} is {}: {woke}", event.token().0, describe(event));
            }
        }
        {
            let _source = WakeSource::Reactor.enter(); // for the trace: "woken by the reactor"
            driver.to_wake.drain(..).for_each(Waker::wake);
        }

        // Wake phase, timers: every timer whose deadline passed.
        self.expired_timers(&mut driver.to_wake);
        let _source = WakeSource::Timer.enter();
        driver.to_wake.drain(..).for_each(Waker::wake);
    }
    // ANCHOR_END: reactor_loop

    /// Makes the thread asleep in [`turn`](Self::turn) return now (it writes
    /// to the `eventfd` that `epoll_wait` also watches).
    pub(crate) fn interrupt(&self) {
        if let Err(e) = self.waker.wake() {
            eprintln!("[reactor] could not interrupt epoll_wait: {e}");
        }
    }

    /// How long `epoll_wait` may sleep: until the earliest timer, or forever,
    /// and at most `max_wait`. Notes it, so that adding an earlier timer
    /// knows to interrupt the wait.
    fn next_timeout(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let mut timers = self.timers();
        let next = timers.table.next_deadline();
        let now = Instant::now();
        let timeout = match (next.map(|deadline| deadline.saturating_duration_since(now)), max_wait) {
            (Some(timer), Some(max)) => Some(timer.min(max)),
            (timer, max) => timer.or(max),
        };
        timers.reactor = match timeout {
            None => ReactorWait::Forever,
            Some(Duration::ZERO) => ReactorWait::Busy, // a look, not a sleep: nothing to interrupt
            Some(timeout) => ReactorWait::Until(now + timeout),
        };
        drop(timers);
        if logging() {
            let sources = self.sources().map.len();
            let timer = timeout.map_or("no timer".to_string(), |t| format!("next timer in {} ms", t.as_millis()));
            say!("reactor", "epoll_wait: {sources} source(s) registered, {timer}");
        }
        timeout
    }

    /// Takes the wakers of every timer whose deadline has passed.
    fn expired_timers(&self, to_wake: &mut Vec<Waker>) {
        self.timers().table.expired(Instant::now(), to_wake);
        if logging() && !to_wake.is_empty() {
            say!("reactor", "{} timer(s) due: wake their task(s)", to_wake.len());
        }
    }

    /// Registers `source`, readable and writable, edge-triggered (mio always
    /// is): an event means "something changed", and the future then reads or
    /// writes until `WouldBlock`, as chapter 3's rules say.
    fn register(&self, source: &mut impl Source) -> io::Result<(Token, Arc<ScheduledIo>)> {
        let io = Arc::new(ScheduledIo::default());
        let token = {
            let mut sources = self.sources();
            let token = Token(sources.next_token);
            sources.next_token += 1;
            sources.map.insert(token, Arc::clone(&io));
            token
        };
        // In the table first: an event that arrives right after this call
        // already finds its entry.
        if let Err(e) = self.registry.register(source, token, Interest::READABLE | Interest::WRITABLE) {
            self.sources().map.remove(&token);
            return Err(e);
        }
        Ok((token, io))
    }

    fn deregister(&self, source: &mut impl Source, token: Token) {
        // A failure here leaves nothing to clean up in the kernel: the
        // source's fd is about to be closed, which removes it from epoll.
        let _ = self.registry.deregister(source);
        let removed = self.sources().map.remove(&token);
        drop(removed); // its wakers are dropped outside the lock
    }

    // ANCHOR: timers
    /// Adds a timer that wakes `waker` at `deadline`.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: &Waker) -> TimerKey {
        let mut timers = self.timers();
        let key = timers.table.add(deadline, waker.clone());
        // If the reactor sleeps past this deadline, interrupt its sleep so it
        // recomputes its timeout. (Once per sleep: it is `Busy` until then.)
        let interrupt = match timers.reactor {
            ReactorWait::Forever => true,
            ReactorWait::Until(sleeping_until) => deadline < sleeping_until,
            ReactorWait::Busy => false,
        };
        if interrupt {
            timers.reactor = ReactorWait::Busy;
            drop(timers);
            self.interrupt();
        }
        key
    }

    /// Replaces a timer's waker. `false` if the timer already fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        self.timers().table.update(key, waker)
    }

    /// Removes a timer that has not fired (its future was dropped early).
    pub(crate) fn remove_timer(&self, key: TimerKey) {
        let removed = self.timers().table.remove(key);
        drop(removed); // the waker is dropped outside the lock
    }
    // ANCHOR_END: timers
}

impl ScheduledIo {
    /// The reactor's side: count the event and take the wakers to call.
    /// Returns what it did, for the `[reactor]` line.
    fn ready(&self, readable: bool, writable: bool, to_wake: &mut Vec<Waker>) -> &'static str {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut woke = [false; 2];
        for (i, ready) in [readable, writable].into_iter().enumerate() {
            if ready {
                state[i].events += 1;
                if let Some(waker) = state[i].waker.take() {
                    to_wake.push(waker);
                    woke[i] = true;
                }
            }
        }
        match woke {
            [true, true] => "wake its reader and its writer",
            [true, false] => "wake its reader",
            [false, true] => "wake its writer",
            [false, false] => "no task is waiting on it",
        }
    }

    /// Events delivered in `direction` so far.
    fn events(&self, direction: Direction) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)[direction as usize].events
    }

    /// The future's side, after `WouldBlock`: store `waker` unless an event
    /// came in since it looked (`seen`); `false` means "try again".
    fn wait(&self, direction: Direction, seen: u64, waker: &Waker) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let waiter = &mut state[direction as usize];
        if waiter.events != seen {
            return false;
        }
        match &waiter.waker {
            Some(stored) if stored.will_wake(waker) => {}
            _ => waiter.waker = Some(waker.clone()), // the latest waker replaces the old one
        }
        true
    }
}

/// `readable, read closed` etc. for a `[reactor]` line.
fn describe(event: &mio::event::Event) -> String {
    let flags = [
        (event.is_readable(), "readable"),
        (event.is_writable(), "writable"),
        (event.is_read_closed(), "read closed"),
        (event.is_write_closed(), "write closed"),
        (event.is_error(), "error"),
    ];
    let names: Vec<&str> = flags.iter().filter(|(set, _)| *set).map(|(_, name)| *name).collect();
    names.join(", ")
}

// ANCHOR: io_source
/// A mio source registered with the reactor; deregistered when dropped.
#[derive(Debug)]
pub(crate) struct IoSource<S: Source> {
    /// The socket.
    source: S,
    /// Its key in the reactor's sources table.
    token: Token,
    /// Its entry there, shared with the reactor.
    io: Arc<ScheduledIo>,
    /// The reactor it is registered with.
    reactor: Handle,
}

impl<S: Source> IoSource<S> {
    /// Registers `source` with the current thread's reactor (see [`Handle::current`]).
    pub(crate) fn new(mut source: S) -> io::Result<IoSource<S>> {
        let reactor = Handle::current()?;
        let (token, io) = reactor.get().register(&mut source)?;
        Ok(IoSource { source, token, io, reactor })
    }

    /// The socket itself.
    pub(crate) fn get_ref(&self) -> &S {
        &self.source
    }

    /// Runs a non-blocking syscall (`op`) until it does not say `WouldBlock`;
    /// if it does, leaves `cx.waker()` with the reactor and returns `Pending`.
    ///
    /// A `Ready` spends one unit of the task's cooperative budget; with
    /// none left, the syscall is not even tried: the task is woken and
    /// yields (see [`crate::coop`]). That is what stops a socket that is
    /// always ready (a client that floods us) from keeping its task, and
    /// every task on its thread, in one endless poll.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let unit = ready!(coop::poll_proceed(cx));
        loop {
            let seen = self.io.events(direction);
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue, // EINTR: just retry
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.io.wait(direction, seen, cx.waker()) {
                        return Poll::Pending; // the unit goes back: we wait, as usual
                    }
                    // An event arrived between `seen` and the syscall's
                    // answer: the socket may be ready now, so try again.
                    // (At most once per event the reactor delivers in
                    // between: each retry follows a new one.)
                }
                result => {
                    unit.spend();
                    return Poll::Ready(result);
                }
            }
        }
    }
}

impl<S: Source> Drop for IoSource<S> {
    fn drop(&mut self) {
        self.reactor.get().deregister(&mut self.source, self.token);
    }
}
// ANCHOR_END: io_source

/// How many sources are registered with the reactor right now (0 if it
/// never started). Tests use it to check that dropped sockets deregister.
pub fn registered_sources() -> usize {
    Reactor::started().map_or(0, Reactor::sources_len)
}

/// How many timers are pending (0 if the reactor never started).
pub fn pending_timers() -> usize {
    Reactor::started().map_or(0, Reactor::timers_len)
}

thread_local! {
    /// The reactor of the runtime this thread drives, if that runtime owns
    /// one (set by its `block_on`).
    static CURRENT: RefCell<Option<Arc<Reactor>>> = const { RefCell::new(None) };
}

/// Which reactor a socket or timer is registered with: the process's
/// (`None`), or a runtime's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handle(Option<Arc<Reactor>>);

impl Handle {
    /// The reactor for a leaf future polled on this thread: its runtime's
    /// own if it has one, else the process's (started if needed).
    pub(crate) fn current() -> io::Result<Handle> {
        match CURRENT.try_with(|current| current.borrow().clone()).ok().flatten() {
            Some(owned) => Ok(Handle(Some(owned))),
            None => Reactor::get().map(|_| Handle(None)),
        }
    }

    /// The reactor itself.
    pub(crate) fn get(&self) -> &Reactor {
        match &self.0 {
            Some(owned) => owned,
            // A `Handle(None)` comes from `current`, after `Reactor::get` succeeded.
            None => Reactor::started().expect("the process's reactor was started when this handle was made"),
        }
    }
}

/// Makes `reactor` the current thread's reactor until the guard is dropped.
pub(crate) fn enter(reactor: Arc<Reactor>) -> CurrentReactor {
    CurrentReactor { previous: CURRENT.with(|current| current.replace(Some(reactor))) }
}

/// Puts the previous current reactor back when dropped.
#[derive(Debug)]
pub(crate) struct CurrentReactor {
    /// What was current before.
    previous: Option<Arc<Reactor>>,
}

impl Drop for CurrentReactor {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

impl Reactor {
    /// How many sources are registered with this reactor.
    pub(crate) fn sources_len(&self) -> usize {
        self.sources().map.len()
    }

    /// How many timers are pending in this reactor.
    pub(crate) fn timers_len(&self) -> usize {
        self.timers().table.len()
    }
}
