//! Exercise 4.3, solved: a timer as a leaf future.

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

// ANCHOR: poll
impl Future for Sleep {
    type Output = io::Result<()>;

    fn poll(&mut self) -> PollState<io::Result<()>> {
        match std::mem::replace(&mut self.state, SleepState::Done) {
            SleepState::NotStarted { duration } => {
                // A leaf may return NotReady only after it gave the executor
                // something to wait for: here, a timer that epoll can watch.
                let started = start_timer(duration).and_then(|timer| {
                    let (token, _log) = runtime::register(&timer, Interest::READABLE, "sleep")?;
                    Ok((timer, token))
                });
                match started {
                    Ok((timer, token)) => {
                        self.state = SleepState::Waiting { timer, token };
                        PollState::NotReady
                    }
                    Err(e) => PollState::Ready(Err(e)),
                }
            }
            SleepState::Waiting { timer, token } => {
                // An event is a hint: read the expiration count to be sure.
                let mut expirations = [0u8; 8];
                // SAFETY: the fd is our open timerfd; the buffer is 8
                // writable bytes, the size a timerfd read needs.
                let read = syscall!(unsafe { libc::read(timer.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) });
                match read {
                    Ok(_) => {
                        let _ = runtime::deregister(&timer, token); // the fd closes right after, anyway
                        PollState::Ready(Ok(()))
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                        self.state = SleepState::Waiting { timer, token };
                        PollState::NotReady
                    }
                    Err(e) => PollState::Ready(Err(e)),
                }
            }
            SleepState::Done => panic!("Sleep polled after it returned Ready"),
        }
    }
}
// ANCHOR_END: poll

// ANCHOR: start_timer
/// A non-blocking timerfd on the monotonic clock (wall-clock changes do not
/// move it), set to expire once, `duration` from now.
fn start_timer(duration: Duration) -> io::Result<OwnedFd> {
    // SAFETY: timerfd_create takes no pointers; on success it returns a new fd.
    let fd = syscall!(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) })?;
    // SAFETY: the kernel just gave us `fd`, open and owned by no one else.
    let timer = unsafe { OwnedFd::from_raw_fd(fd) };
    // An all-zero `it_value` would *disarm* the timer (it would never fire),
    // so a zero duration becomes the shortest one: 1 ns.
    let duration = duration.max(Duration::from_nanos(1));
    let expires = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, // once, not periodic
        it_value: libc::timespec {
            tv_sec: duration.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_nsec: duration.subsec_nanos().into(),
        },
    };
    // SAFETY: `timer` is our timerfd; `expires` is a valid itimerspec that
    // outlives the call; a null old-value pointer is allowed.
    syscall!(unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &expires, std::ptr::null_mut()) })?;
    Ok(timer)
}
// ANCHOR_END: start_timer

// ANCHOR: drop
impl Drop for Sleep {
    /// A `Sleep` dropped while waiting (cancelled) takes its timer out of the
    /// event queue, so no event ever names a future that is gone.
    fn drop(&mut self) {
        if let SleepState::Waiting { timer, token } = &self.state {
            let _ = runtime::deregister(timer, *token);
        }
    }
}
// ANCHOR_END: drop
