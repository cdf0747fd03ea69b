//! Timers on the completion driver: [`sleep`] is one TIMEOUT operation,
//! and [`timeout`] races a future against one.
//!
//! The reactor keeps its timers itself (a heap of deadlines, the earliest
//! one being `epoll_wait`'s timeout) and the kernel never hears of them.
//! Here each timer *is* an operation: the kernel completes it with `-ETIME`
//! when its time is up. A timer dropped before that (the usual fate of a
//! `timeout` whose future won) costs an ASYNC_CANCEL and a second
//! completion, both carried by `io_uring_enter` calls that the driver makes
//! anyway; a driver that wanted fewer operations would keep a heap of its
//! own and ask the kernel only for the earliest deadline, as the reactor does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ch03_epoll::uring::{KernelTimespec, Sqe};

use super::op::Op;
use crate::coop;

// ANCHOR: sleep
/// A future that is ready `duration` from now (from this call, not from
/// its first poll). Its output is `Err` only where io_uring is not
/// available: there is no other timer to fall back on.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { deadline: Instant::now().checked_add(duration), timer: None }
}

/// The future [`sleep`] returns.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Sleep {
    /// When it is ready; `None`: so far off that `Instant` cannot hold it.
    deadline: Option<Instant>,
    /// The TIMEOUT operation, once the first poll found time left. It owns
    /// the timespec the kernel reads.
    timer: Option<Op<Box<KernelTimespec>>>,
}

impl Future for Sleep {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut(); // `Sleep` holds no self-references: it is `Unpin`
        let timer = match &mut this.timer {
            Some(timer) => timer,
            None => {
                let left = this.deadline.map_or(Duration::MAX, |at| at.saturating_duration_since(Instant::now()));
                if left.is_zero() {
                    // Due already: `Ready` without asking the kernel, one unit spent.
                    ready!(coop::poll_proceed(cx)).spend();
                    return Poll::Ready(Ok(()));
                }
                // Relative to when the kernel takes the SQE, a few
                // microseconds from now: the timer may fire that much late, never early.
                let timespec = Box::new(KernelTimespec::from_duration(left));
                let sqe = Sqe::timeout(&*timespec, 0);
                // SAFETY: TIMEOUT reads the timespec in the Box, which the
                // operation owns; it uses no file descriptor.
                match unsafe { Op::submit(sqe, timespec) } {
                    Ok(op) => this.timer.insert(op),
                    Err((e, _)) => return Poll::Ready(Err(e)),
                }
            }
        };
        let (res, _) = ready!(Pin::new(timer).poll(cx)); // `Op` spends the unit
        this.timer = None;
        this.deadline = Some(Instant::now()); // polled again: ready again, at once
        match res {
            // Time is up (0 would mean "after a count of completions", which
            // we do not ask for).
            0 => Poll::Ready(Ok(())),
            res if res == -libc::ETIME => Poll::Ready(Ok(())),
            res => Poll::Ready(Err(io::Error::from_raw_os_error(-res))),
        }
    }
}
// ANCHOR_END: sleep

// ANCHOR: timeout
/// Runs `future` for at most `limit`: its output, or a `TimedOut` error if
/// the time ran out first, in which case `future` is dropped (and any
/// operation of its in flight cancelled) right away.
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout { future: Some(Box::pin(future)), timer: sleep(limit), limit }
}

/// The future [`timeout`] returns: a race between `future` and a [`Sleep`].
///
/// `future` is boxed and pinned there (`Box::pin`), so `Timeout` is
/// `Unpin` and polls it without a pin projection (`crate::time::Timeout`
/// does it in place, with one; chapter 6 explains both).
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Timeout<F> {
    /// The future being raced; `None` once it finished or lost.
    future: Option<Pin<Box<F>>>,
    /// The other runner.
    timer: Sleep,
    /// For the error.
    limit: Duration,
}

impl<F: Future> Future for Timeout<F> {
    type Output = io::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<F::Output>> {
        let this = self.get_mut();
        let Some(future) = this.future.as_mut() else {
            panic!("Timeout polled after it returned Ready");
        };
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            this.future = None;
            return Poll::Ready(Ok(output)); // the timer is cancelled when `Timeout` is dropped
        }
        // Looked at without a budget, as `crate::time::timeout` does: a
        // future that spends the whole budget on every poll must not keep
        // its own time limit from running out.
        let fired = ready!(coop::unconstrained(|| Pin::new(&mut this.timer).poll(cx)));
        this.future = None; // lost the race: dropped now, its operations cancelled
        Poll::Ready(match fired {
            Ok(()) => {
                let why = format!("did not finish within {} ms", this.limit.as_millis());
                Err(io::Error::new(io::ErrorKind::TimedOut, why))
            }
            Err(e) => Err(e),
        })
    }
}
// ANCHOR_END: timeout

impl<F> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout").field("running", &self.future.is_some()).field("limit", &self.limit).finish()
    }
}
