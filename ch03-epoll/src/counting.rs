//! Counting the system calls the clients make, so the page and the bench
//! can compare readiness (epoll) with completion (io_uring) in calls per
//! request, not in adjectives.
//!
//! Teaching instrumentation, not part of the event loops: each call site
//! adds one to a counter of this thread ([`count`]), which costs a few
//! nanoseconds next to the ~175 ns of the system call itself. Production
//! code would use `strace -c` or `perf trace -s` from outside instead; in
//! here the numbers must come from the code the learner edits, so a change
//! to a loop shows up in the count at once.
//!
//! The counters are per thread: a test, the demo and each bench run read
//! the difference between two [`snapshot`]s taken on the thread that ran
//! the client, and other threads (the delay server's, other tests') never
//! add to it.
//!
//! What is counted is what the clients call for their requests: `socket`,
//! `connect`, `epoll_ctl`, `epoll_wait`, `getsockopt` (the connect's
//! result), `getpeername`, the reads and writes, `close`, and
//! `io_uring_enter`. Setting the queue up once per batch (`epoll_create1`;
//! `io_uring_setup` and two `mmap`s) and the memory allocator's own calls
//! are not.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Sub;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use crate::http_get::Connection;

/// A system call the clients make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    /// `socket`: a new socket for each request.
    Socket,
    /// `connect`: starts the handshake (epoll); io_uring's CONNECT makes none.
    Connect,
    /// `epoll_ctl`: registering and deregistering a socket.
    EpollCtl,
    /// `epoll_wait`: sleeping until sockets are ready.
    EpollWait,
    /// `getsockopt(SO_ERROR)`: how a non-blocking connect ended.
    Getsockopt,
    /// `getpeername`: whether a socket is connected yet.
    Getpeername,
    /// A read of a socket (`read`, `recv`, `recvfrom`), including one that
    /// says `WouldBlock`.
    Read,
    /// A write to a socket (`write`, `send`), including one that says `WouldBlock`.
    Write,
    /// `close`: a socket's end.
    Close,
    /// `io_uring_enter`: handing the kernel queued operations and/or
    /// waiting for completions.
    IoUringEnter,
}

impl Syscall {
    /// Every kind, in the order they are printed.
    pub const ALL: [Syscall; 10] = [
        Syscall::Socket,
        Syscall::Connect,
        Syscall::EpollCtl,
        Syscall::EpollWait,
        Syscall::Getsockopt,
        Syscall::Getpeername,
        Syscall::Read,
        Syscall::Write,
        Syscall::Close,
        Syscall::IoUringEnter,
    ];

    /// The system call's name, as `strace` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Socket => "socket",
            Syscall::Connect => "connect",
            Syscall::EpollCtl => "epoll_ctl",
            Syscall::EpollWait => "epoll_wait",
            Syscall::Getsockopt => "getsockopt",
            Syscall::Getpeername => "getpeername",
            Syscall::Read => "read",
            Syscall::Write => "write",
            Syscall::Close => "close",
            Syscall::IoUringEnter => "io_uring_enter",
        }
    }
}

thread_local! {
    /// This thread's counters, indexed by `Syscall as usize`.
    static COUNTS: Cell<[u64; Syscall::ALL.len()]> = const { Cell::new([0; Syscall::ALL.len()]) };
}

/// Adds one `call` to this thread's count.
pub fn count(call: Syscall) {
    COUNTS.with(|counts| {
        let mut now = counts.get();
        now[call as usize] += 1;
        counts.set(now);
    });
}

/// This thread's counts so far; subtract an earlier snapshot for what
/// happened in between.
pub fn snapshot() -> Syscalls {
    Syscalls(COUNTS.with(Cell::get))
}

/// How many of each [`Syscall`] a thread made (see [`snapshot`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Syscalls([u64; Syscall::ALL.len()]);

impl Syscalls {
    /// How many `call`s.
    pub fn of(&self, call: Syscall) -> u64 {
        self.0[call as usize]
    }

    /// All of them together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The counts divided by `requests`, for "per request" figures:
    /// `socket 1, connect 1, epoll_ctl 2, epoll_wait 0.3, ...`.
    pub fn per_request(&self, requests: usize) -> String {
        let requests = requests.max(1) as f64;
        let parts: Vec<String> = Syscall::ALL
            .into_iter()
            .filter(|&call| self.of(call) > 0)
            .map(|call| format!("{} {}", call.name(), round(self.of(call) as f64 / requests)))
            .collect();
        if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
    }
}

/// A ratio with at most two decimals and no trailing zeros: `1`, `0.3`, `2.05`.
fn round(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl From<[u64; Syscall::ALL.len()]> for Syscalls {
    /// The counts in the order of [`Syscall::ALL`].
    fn from(counts: [u64; Syscall::ALL.len()]) -> Syscalls {
        Syscalls(counts)
    }
}

impl Sub for Syscalls {
    type Output = Syscalls;
    fn sub(self, earlier: Syscalls) -> Syscalls {
        let mut difference = self.0;
        for (now, then) in difference.iter_mut().zip(earlier.0) {
            *now = now.saturating_sub(then);
        }
        Syscalls(difference)
    }
}

impl fmt::Display for Syscalls {
    /// `33 (socket 10, close 10, io_uring_enter 13)`: the total, then each
    /// kind that occurred (`0` if none did).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Syscall::ALL
            .into_iter()
            .filter(|&call| self.of(call) > 0)
            .map(|call| format!("{} {}", call.name(), self.of(call)))
            .collect();
        if parts.is_empty() { f.write_str("0") } else { write!(f, "{} ({})", self.total(), parts.join(", ")) }
    }
}

/// A socket whose reads, writes, connect checks and close are counted.
///
/// The epoll client wraps each `TcpStream` in one, so that
/// [`HttpGet`](crate::http_get::HttpGet) stays free of counting: the state
/// machine the book shows calls `read` and `write`, and this wrapper adds
/// one to the right counter on the way.
#[derive(Debug)]
pub struct Counted<S>(
    /// The socket.
    pub S,
);

impl<S: Read> Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        count(Syscall::Read);
        self.0.read(buf)
    }
}

impl<S: Write> Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        count(Syscall::Write);
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush() // a TCP socket has no buffer of ours to flush: no syscall
    }
}

impl<S: Connection> Connection for Counted<S> {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        count(Syscall::Getsockopt);
        self.0.take_error()
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        count(Syscall::Getpeername);
        self.0.peer_addr()
    }
}

impl<S: AsRawFd> AsRawFd for Counted<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl<S: AsFd> AsFd for Counted<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl<S> Drop for Counted<S> {
    /// The socket inside closes right after this (its own `Drop`).
    fn drop(&mut self) {
        count(Syscall::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_thread_and_subtract() {
        let before = snapshot();
        count(Syscall::Read);
        count(Syscall::Read);
        count(Syscall::IoUringEnter);
        // Another thread's calls never show up here.
        std::thread::spawn(|| count(Syscall::Read)).join().unwrap();
        let made = snapshot() - before;
        assert_eq!((made.of(Syscall::Read), made.of(Syscall::IoUringEnter), made.total()), (2, 1, 3));
        assert_eq!(made.to_string(), "3 (read 2, io_uring_enter 1)");
        assert_eq!(made.per_request(4), "read 0.5, io_uring_enter 0.25");
    }
}
