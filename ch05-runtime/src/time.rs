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
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use crate::coop;
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
            // Due: that is a `Ready`, and spends a unit of the task's budget
            // (crate::coop), so a loop of expired sleeps yields too.
            ready!(coop::poll_proceed(cx)).spend();
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
                    ready!(coop::poll_proceed(cx)).spend();
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
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout { future: Some(future), deadline: sleep(limit), limit }
}

/// The future [`timeout`] returns: a race between `future` and a [`Sleep`].
///
/// Written by hand rather than as an `async fn`: an `async fn` keeps its
/// arguments in its state even after moving them into locals, so an
/// `async fn timeout(limit, future: F)` would hold `F` twice
/// (rust-lang/rust#62958, chapter 4's size table shows the same effect).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Timeout<F> {
    /// The future being raced; `None` once it finished or was cancelled.
    /// Pinned whenever the `Timeout` is (structurally pinned: see `poll`).
    future: Option<F>,
    /// The other runner. `Sleep` is `Unpin`: it need not stay in place.
    deadline: Sleep,
    /// For the error.
    limit: Duration,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: a pin projection (chapter 6). `future` is treated as pinned
        // whenever `self` is: it is only ever reached through the `Pin` made
        // here, never moved out or swapped (it is dropped in place with
        // `Pin::set`), `Timeout` has no `Drop` of its own that could move it,
        // and `Timeout` is `Unpin` only if `F` is. The other two fields are
        // not pinned, and only plain `&mut` to them are used.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above: `this.future` stays where it is until dropped.
        let mut future = unsafe { Pin::new_unchecked(&mut this.future) };
        let Some(running) = future.as_mut().as_pin_mut() else {
            panic!("Timeout polled after it returned Ready");
        };
        if let Poll::Ready(output) = running.poll(cx) {
            future.set(None);
            return Poll::Ready(Ok(output));
        }
        // The deadline is looked at without a budget: a future that spends
        // the task's whole budget on every poll (a socket that a client
        // floods) would otherwise make its own time limit wait for budget,
        // poll after poll, and never run out.
        match coop::unconstrained(|| Pin::new(&mut this.deadline).poll(cx)) {
            Poll::Ready(()) => {
                // The future lost the race: drop it now, in place. That is
                // how it is cancelled: it is never polled again, and its
                // `drop` releases what it held (a socket deregisters).
                future.set(None);
                Poll::Ready(Err(Elapsed { limit: this.limit }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
// ANCHOR_END: timeout
