//! Exercise 4.3: a timer as a leaf future.
//!
//! Chapter 4's executor wakes a task only when `epoll` reports one of the
//! task's file descriptors: it has no other way to know that waiting is
//! over. So a timer must be a file descriptor too. Linux has one: a
//! `timerfd` becomes readable when its time is up. Write `Sleep`, a leaf
//! future on a timerfd: create and set the timer on the first poll, register
//! it with the executor, be ready once it fired, and deregister it when the
//! `Sleep` is dropped early (cancelled).
//!
//! Check it: `cargo run -p ch04-exercises -- 3`

// Starter code: `todo!()` leaves the imports and states unused. Delete this
// line when your code uses them.
#![allow(unused_imports, dead_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use ch01_os_threads::syscall;
use ch03_epoll::poll::{Interest, Token};
use ch04_coroutines::future::{Future, PollState};
use ch04_coroutines::runtime;

/// A future that is ready `duration` after its first poll.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { state: SleepState::NotStarted { duration } }
}

/// The future [`sleep`] returns. Its output is `Err` only if the timer could
/// not be made.
#[derive(Debug)]
pub struct Sleep {
    /// Where it is.
    state: SleepState,
}

/// The states of a [`Sleep`].
#[derive(Debug)]
enum SleepState {
    /// Created, never polled: no timer exists yet.
    NotStarted {
        /// How long to sleep, from the first poll.
        duration: Duration,
    },
    /// The timer is set and registered with the executor's event queue.
    Waiting {
        /// The timerfd: readable once the time is up.
        timer: OwnedFd,
        /// Its token in the event queue.
        token: Token,
    },
    /// Finished: polling again panics.
    Done,
}

impl Future for Sleep {
    type Output = io::Result<()>;

    fn poll(&mut self) -> PollState<io::Result<()>> {
        todo!("NotStarted: make the timer and register it; Waiting: ready once the timer fired")
    }
}

impl Drop for Sleep {
    /// A `Sleep` dropped while waiting (cancelled) takes its timer out of the
    /// event queue, so no event ever names a future that is gone.
    fn drop(&mut self) {
        // Your code: a Sleep dropped while Waiting must deregister its timer.
        // (No `todo!()` here: a panic in `drop` while another panic unwinds
        // aborts the program.)
    }
}
