//! Timers: [`sleep`] and [`timeout`].
//!
//! A [`Sleep`] is a leaf future like a socket read, but what it waits for is
//! a deadline: it adds its waker to the reactor's timer table, and the
//! reactor's `epoll_wait` timeout is the earliest deadline in that table.
//! [`timeout`] races a future against a `Sleep`; whichever is ready first
//! wins, and the loser is dropped, which is how an async task is cancelled:
//! it is simply never polled again, and its `drop` cleans up (a socket
//! deregisters, a timer leaves the table).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::reactor::Handle;
use crate::timers::TimerKey;

/// How far "never" is, for a sleep so long that `Instant` cannot hold its deadline.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A future that is ready at `now + duration`.
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    sleep_until(now.checked_add(duration).unwrap_or_else(|| now + FAR_FUTURE))
}

/// A future that is ready at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, timer: None, reactor: Handle::default() }
}

// ANCHOR: sleep
/// The future [`sleep`] returns.
///
/// # Panics
///
/// When polled, if the reactor thread cannot be started (no threads or file
/// descriptors left): a timer needs it, and there is no output to carry the
/// error.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Sleep {
    /// When it is ready.
    deadline: Instant,
    /// Its entry in the reactor's timer table, once it has waited.
    timer: Option<TimerKey>,
    /// Which reactor that table belongs to (see [`Handle`]).
    reactor: Handle,
}

impl Sleep {
    /// When it will be ready.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut(); // `Sleep` holds no self-references: it is `Unpin`
        if Instant::now() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        match this.timer {
            // First wait: a timer in the reactor's table, with our waker.
            None => {
                this.reactor = Handle::current().unwrap_or_else(|e| panic!("sleep: cannot start the reactor: {e}"));
                this.timer = Some(this.reactor.get().add_timer(this.deadline, cx.waker()));
            }
            // Polled again before the deadline (another future in the same
            // task woke it, or the task moved): keep the newest waker.
            Some(key) => {
                if !this.reactor.get().update_timer(key, cx.waker()) {
                    // It fired between our clock check and now: done.
                    this.timer = None;
                    return Poll::Ready(());
                }
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    /// Takes our timer out of the reactor's table, if it is still there.
    fn cancel(&mut self) {
        if let Some(key) = self.timer.take() {
            self.reactor.get().remove_timer(key);
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}
// ANCHOR_END: sleep

/// The error of a [`timeout`] that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    /// The time limit that passed.
    limit: Duration,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "did not finish within {} ms", self.limit.as_millis())
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}

// ANCHOR: timeout
/// Runs `future` for at most `limit`: its output, or [`Elapsed`] if the time
/// ran out first, in which case `future` is dropped (cancelled) right away.
pub async fn timeout<F: Future>(limit: Duration, future: F) -> Result<F::Output, Elapsed> {
    // Pinned on this async fn's own state: `future` may be an `async fn`'s
    // state machine, which must not move once polled (chapter 6).
    let mut future = pin!(future);
    let mut deadline = sleep(limit);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed { limit })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
    // Returning drops `future` (and `deadline`): a future that lost the race
    // is never polled again, and its `drop` releases what it held.
}
// ANCHOR_END: timeout
