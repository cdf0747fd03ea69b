//! The wait step, in one place: how a single-threaded runtime's thread
//! sleeps when it has nothing to run, and how a wake from another thread
//! reaches it there.
//!
//! There are two ways to sleep, one per [`IoDriver`](crate::IoDriver):
//!
//! - **park the thread** (`thread::park`): the process's reactor thread
//!   waits in `epoll_wait` for everyone, and its wakes reach us through the
//!   injector and an `unpark`;
//! - **wait in our own reactor** (`epoll_wait` on this very thread): sockets
//!   and timers wake their tasks right here, and a wake from another thread
//!   interrupts the wait (a write to the reactor's `eventfd`).
//!
//! The executor's loop does not care which: it calls [`Parker::park`] when
//! it has nothing to run, and [`Parker::poll_driver`] now and then while it
//! has (so sockets and timers make progress even when tasks are always
//! ready). tokio draws the same line between its scheduler and its "driver".

use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Duration;

use crate::reactor::{Driver, Reactor};

// ANCHOR: parker
/// How the thread waits; owned by the thread inside `block_on`.
#[derive(Debug)]
pub(crate) enum Parker {
    /// Sleep in `thread::park`; the process's reactor thread (or any other
    /// thread) wakes us with `unpark`.
    Thread,
    /// Sleep in our own reactor's `epoll_wait`.
    Reactor {
        /// The reactor (its tables, usable from any thread).
        reactor: Arc<Reactor>,
        /// Its waiting half: the epoll instance and room for its events.
        driver: Driver,
    },
}

impl Parker {
    /// The runtime's own reactor, if it waits in one.
    pub(crate) fn reactor(&self) -> Option<&Arc<Reactor>> {
        match self {
            Parker::Thread => None,
            Parker::Reactor { reactor, .. } => Some(reactor),
        }
    }

    /// Sleeps until woken: an `unpark`, or (in our own reactor) an event, a
    /// due timer or an interrupt. Wakes that came in meanwhile are in the
    /// run queues when it returns.
    pub(crate) fn park(&mut self) {
        match self {
            Parker::Thread => thread::park(),
            Parker::Reactor { reactor, driver } => reactor.turn(driver, None),
        }
    }

    /// Lets the driver in without sleeping: with our own reactor, take the
    /// events that are ready and fire the timers that are due (their tasks
    /// go into the local queue). With the reactor thread, nothing to do: it
    /// runs on its own, and its wakes are already in the injector.
    pub(crate) fn poll_driver(&mut self) {
        match self {
            Parker::Thread => {}
            Parker::Reactor { reactor, driver } => reactor.turn(driver, Some(Duration::ZERO)),
        }
    }
}
// ANCHOR_END: parker

/// Where the `block_on` thread is, for a wake from another thread. Kept
/// under the injector's lock, so that "nothing to run, so sleep" and "push
/// a task, so wake it" cannot miss each other.
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    /// The thread inside `block_on`, while there is one.
    pub(crate) thread: Option<Thread>,
    /// It sleeps in its own reactor's `epoll_wait` right now: an `unpark`
    /// would not reach it there, an interrupt does.
    in_reactor: bool,
}

impl Sleeper {
    /// A task was pushed: wake the thread wherever it sleeps. A no-op for a
    /// thread that is awake (an `unpark` then only makes its next `park`
    /// return at once, which is what a wake that raced with it needs).
    pub(crate) fn wake(&mut self, reactor: Option<&Reactor>) {
        if let Some(thread) = &self.thread {
            thread.unpark(); // an atomic swap; a futex wake only if it is parked
        }
        if self.in_reactor {
            self.in_reactor = false; // one interrupt is enough
            if let Some(reactor) = reactor {
                reactor.interrupt(); // asleep in epoll_wait: write to its eventfd
            }
        }
    }

    /// The thread is about to sleep (`in_reactor`: in its reactor).
    pub(crate) fn going_to_sleep(&mut self, in_reactor: bool) {
        self.in_reactor = in_reactor;
    }

    /// The thread is awake again.
    pub(crate) fn awake(&mut self) {
        self.in_reactor = false;
    }
}
