//! Helpers shared by the integration tests: polling that only looks or waits
//! a bounded time, knowing that a thread is asleep inside `epoll_wait` (or
//! `io_uring_enter`) before acting, without sleeping for a guessed time,
//! and skipping the io_uring tests, with the reason, where io_uring is not
//! available.
//!
//! Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ch03_epoll::poll::{Event, Events, Poll};
use ch03_epoll::uring::{Ring, Unavailable};

/// Generous bound for polls that must see an event: it only matters if the
/// test is failing, and then it turns a hang into a clear failure.
pub const SHOULD_NOT_TAKE: Option<Duration> = Some(Duration::from_secs(10));

/// The events ready right now: a zero timeout only looks.
pub fn poll_now(poll: &mut Poll) -> io::Result<Vec<Event>> {
    let mut events = Events::with_capacity(16);
    poll.poll(&mut events, Some(Duration::ZERO))?;
    Ok(events.iter().collect())
}

/// Waits (at most [`SHOULD_NOT_TAKE`]) for at least one event.
pub fn poll_until_event(poll: &mut Poll) -> io::Result<Vec<Event>> {
    let mut events = Events::with_capacity(16);
    poll.poll(&mut events, SHOULD_NOT_TAKE)?;
    assert!(!events.is_empty(), "expected an event within {SHOULD_NOT_TAKE:?}");
    Ok(events.iter().collect())
}

/// Whether thread `tid` of this process is blocked in `epoll_wait` (or glibc's
/// `epoll_pwait`) right now, according to `/proc`.
///
/// `/proc/self/task/<tid>/syscall` names a syscall only while the thread is
/// asleep in it (a running thread reads as `running`), and `epoll_wait` only
/// sleeps after it has put the thread on the epoll instance's wait queue, so
/// "blocked in epoll_wait" also means "a wake-up will reach it".
pub fn blocked_in_epoll_wait(tid: libc::pid_t) -> bool {
    matches!(blocked_in(tid), Some(n) if n == libc::SYS_epoll_wait || n == libc::SYS_epoll_pwait || n == libc::SYS_epoll_pwait2)
}

/// Whether thread `tid` of this process is asleep in `io_uring_enter` right
/// now (waiting for completions), according to `/proc` as above.
pub fn blocked_in_io_uring_enter(tid: libc::pid_t) -> bool {
    blocked_in(tid) == Some(libc::SYS_io_uring_enter)
}

/// The number of the system call thread `tid` is asleep in, if any.
fn blocked_in(tid: libc::pid_t) -> Option<libc::c_long> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    text.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok())
}

/// `make()`'s ring, or `None` where io_uring is not available here: then the
/// test prints why and skips (returns early, passing). Any other error is
/// the test's failure.
pub fn ring_or_skip(test: &str, make: impl FnOnce() -> io::Result<Ring>) -> io::Result<Option<Ring>> {
    match make() {
        Ok(ring) => Ok(Some(ring)),
        Err(e) => Unavailable::skip_or_fail(test, e).map(|()| None),
    }
}

/// Spins (yielding the CPU) until `condition` holds. The deadline only turns a
/// broken test into a failure instead of a hang; it is not a speed check.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < give_up, "gave up waiting until {what}");
        thread::yield_now();
    }
}

/// How many SIGUSR1s [`install_signal_counter`]'s handler has seen.
pub static SIGNALS_HANDLED: AtomicUsize = AtomicUsize::new(0);

/// The handler: only an atomic add, which is async-signal-safe.
extern "C" fn count_signal(_signal: libc::c_int) {
    SIGNALS_HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Installs a SIGUSR1 handler that counts into [`SIGNALS_HANDLED`],
/// *without* `SA_RESTART`, so the kernel does not hide the interruption
/// from us. (Neither `epoll_wait` nor `io_uring_enter` is ever restarted
/// automatically anyway; see `man 7 signal`.) A handler belongs to the whole
/// process: each test that uses it is a test binary of its own.
pub fn install_signal_counter() -> io::Result<()> {
    // SAFETY: `sigaction` is plain data for which all-zero bytes are valid
    // (no handler, empty mask, no flags); we fill in the fields we need.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = 0;
    // SAFETY: `action.sa_mask` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and the handler only does an
    // async-signal-safe atomic add; passing null for the old action is allowed.
    ch01_os_threads::syscall!(unsafe { libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) })?;
    Ok(())
}
