//! A small, mio-shaped API over Linux's `epoll`.
//!
//! `epoll` is the kernel's event queue. Instead of one thread blocked in
//! `read` per socket, one thread tells the kernel "these are the sockets I
//! care about, and whether I want to read or write them" ([`Registry`]), then
//! asks "which of them can make progress now?" ([`Poll::poll`]) and sleeps in
//! the kernel until at least one can. Three syscalls do all of it:
//!
//! | syscall          | here                                   | what it does                          |
//! |------------------|----------------------------------------|---------------------------------------|
//! | `epoll_create1`  | [`Poll::new`]                          | make an empty interest list (an fd)   |
//! | `epoll_ctl`      | [`Registry::register`] and friends     | add / change / remove an fd in it     |
//! | `epoll_wait`     | [`Poll::poll`]                         | sleep until something is ready        |
//!
//! Every registration carries a [`Token`], a number *we* choose; the kernel
//! hands it back with each [`Event`], so we know which socket became ready
//! without searching.
//!
//! ```
//! use ch03_epoll::poll::{Events, Interest, Poll, Token};
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//!
//! let mut poll = Poll::new()?;
//! let (mut writer, reader) = UnixStream::pair()?;
//! poll.registry().register(&reader, Token(7), Interest::READABLE)?;
//!
//! writer.write_all(b"hi")?;
//! let mut events = Events::with_capacity(8);
//! poll.poll(&mut events, Some(Duration::from_secs(5)))?;
//!
//! let event = events.iter().next().expect("the reader is readable");
//! assert_eq!(event.token(), Token(7));
//! assert!(event.is_readable());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The names and shapes follow [mio](https://docs.rs/mio) on purpose: at the
//! end of the chapter we swap this module for the real library and the code
//! around it barely changes.

use std::fmt;
use std::io;
use std::ops::{BitOr, BitOrAssign};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ch01_os_threads::syscall;

use crate::counting::{self, Syscall};

/// A number we choose when registering a source; every [`Event`] for that
/// source carries it back.
///
/// Usually an index into a `Vec` or `Slab` of connections, so finding the
/// connection that became ready is one array access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(
    /// The number; the kernel keeps it in the 64-bit `data` of `epoll_event`.
    pub usize,
);

// ANCHOR: interest
/// What we want to hear about for a source, as the bitmask `epoll` takes.
///
/// A bitmask treats each bit of a number as an on/off switch. The values are
/// the kernel's own `EPOLL*` constants, combined with `|`:
///
/// ```text
///  0b1000_0000_0000_0000_0010_0000_0000_0101  = READABLE | WRITABLE | RDHUP | EDGE
///    ││                    │             │ │
///    ││                    │             │ └─  bit 0   IN       READABLE
///    ││                    │             └───  bit 2   OUT      WRITABLE
///    ││                    └─────────────────  bit 13  RDHUP    RDHUP
///    │└──────────────────────────────────────  bit 30  ONESHOT  ONESHOT (not set here)
///    └───────────────────────────────────────  bit 31  ET       EDGE
/// ```
///
/// `Display` and `Debug` print exactly that: the 32 bits and the names of the
/// bits that are set, e.g. `0b1000_0000_0000_0000_0000_0000_0000_0001 (IN|ET)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(
    /// The `EPOLL*` bits, exactly as `epoll_ctl` takes them.
    u32,
);

impl Interest {
    /// `EPOLLIN`: tell me when a read would not block (data arrived, or the
    /// peer closed, or a listener has a connection waiting to be accepted).
    pub const READABLE: Interest = Interest(libc::EPOLLIN as u32);
    /// `EPOLLOUT`: tell me when a write would not block (there is room in the
    /// socket's send buffer, or a non-blocking `connect` finished).
    pub const WRITABLE: Interest = Interest(libc::EPOLLOUT as u32);
    /// `EPOLLET`: edge-triggered. Report a source when something *happens*
    /// to it (data arrived, room in the send buffer freed up), not every time
    /// it *is* ready. Every arriving chunk is a new event, even while older
    /// data sits unread (epoll(7)); data that is already there raises none.
    /// So whoever handles an event must read until `WouldBlock`: what it
    /// leaves behind is not reported again until more data arrives.
    pub const EDGE: Interest = Interest(libc::EPOLLET as u32);
    /// `EPOLLONESHOT`: report the source once, then disable it until
    /// [`Registry::reregister`] arms it again. Useful when several threads
    /// poll one queue and only one of them should handle each event: even
    /// edge-triggered, a second chunk arriving while one thread still reads
    /// the socket would be a second event, for another thread.
    pub const ONESHOT: Interest = Interest(libc::EPOLLONESHOT as u32);
    /// `EPOLLRDHUP`: also report when the peer closed its writing half (we
    /// will read end of file). Shows up as [`Event::is_read_closed`].
    pub const RDHUP: Interest = Interest(libc::EPOLLRDHUP as u32);

    /// The raw bits, as `epoll_ctl` takes them.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// `self` and `other` together: `|` for constants (`const` code cannot
    /// call the `BitOr` operator), as mio's `Interest::add`.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Whether every bit set in `other` is also set in `self`.
    pub const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl BitOrAssign for Interest {
    fn bitor_assign(&mut self, other: Interest) {
        self.0 |= other.0;
    }
}

impl fmt::Display for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Flags(self.0), f)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Flags(self.0), f)
    }
}
// ANCHOR_END: interest

/// Any `epoll` bitmask (what we asked for, or what the kernel reported),
/// printed as its 32 bits and the names of the bits that are set:
/// `0b0000_0000_0000_0000_0000_0000_0000_0101 (IN|OUT)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags(
    /// The raw `EPOLL*` bits.
    pub u32,
);

/// The `epoll` bits this module names, lowest bit first (the order they print in).
const FLAG_NAMES: [(libc::c_int, &str); 8] = [
    (libc::EPOLLIN, "IN"),
    (libc::EPOLLPRI, "PRI"),
    (libc::EPOLLOUT, "OUT"),
    (libc::EPOLLERR, "ERR"),
    (libc::EPOLLHUP, "HUP"),
    (libc::EPOLLRDHUP, "RDHUP"),
    (libc::EPOLLONESHOT, "ONESHOT"),
    (libc::EPOLLET, "ET"),
];

impl Flags {
    /// Just the names of the set bits, e.g. `IN|OUT`; `none` if no bit is
    /// set, and bits without a name as hex.
    pub fn names(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        let mut named = 0u32;
        for (bit, name) in FLAG_NAMES {
            let bit = bit as u32;
            named |= bit;
            if self.0 & bit != 0 {
                names.push(name.to_string());
            }
        }
        if self.0 & !named != 0 {
            names.push(format!("{:#x}", self.0 & !named));
        }
        if names.is_empty() { "none".to_string() } else { names.join("|") }
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The 32 bits, most significant first, in groups of four...
        f.write_str("0b")?;
        for bit in (0..32).rev() {
            f.write_str(if self.0 & (1 << bit) != 0 { "1" } else { "0" })?;
            if bit % 4 == 0 && bit != 0 {
                f.write_str("_")?;
            }
        }
        // ...then the names of the set bits.
        write!(f, " ({})", self.names())
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The event queue: owns the `epoll` file descriptor and waits on it.
///
/// Dropping the `Poll` closes the descriptor, which removes every
/// registration at once (the sources themselves stay open).
#[derive(Debug)]
pub struct Poll {
    /// Where sources are added and removed; shares the `epoll` fd.
    registry: Registry,
}

/// Adds, changes and removes the sources a [`Poll`] watches (`epoll_ctl`).
///
/// It only needs `&self`: the kernel keeps the interest list, so registering
/// from another thread while one thread sleeps in [`Poll::poll`] is fine (get
/// a second handle with [`Registry::try_clone`]).
#[derive(Debug)]
pub struct Registry {
    /// The `epoll` instance. `OwnedFd` closes it exactly once, on drop.
    epoll: OwnedFd,
}

impl Poll {
    // ANCHOR: poll_new
    /// Creates an empty event queue (`epoll_create1`).
    ///
    /// `EPOLL_CLOEXEC` closes the fd in child processes started with `exec`,
    /// so a program we spawn never inherits our event queue by accident.
    pub fn new() -> io::Result<Poll> {
        // SAFETY: epoll_create1 takes no pointers, only a flag; on success it
        // returns a new fd that nothing else owns yet.
        let fd = syscall!(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by the kernel, is open, and is owned
        // by no one else, so handing it to OwnedFd (which closes it) is sound.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poll { registry: Registry { epoll } })
    }
    // ANCHOR_END: poll_new

    /// The handle that adds and removes sources.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    // ANCHOR: poll_wait
    /// Waits until at least one registered source is ready, or `timeout`
    /// passes, and fills `events` with what is ready (`epoll_wait`).
    ///
    /// - `None` waits as long as it takes; `Some(Duration::ZERO)` only looks.
    /// - Timeouts round *up* to whole milliseconds (what `epoll_wait` takes):
    ///   `Some(1 µs)` waits 1 ms, never 0 ms, which would turn a "wait a bit"
    ///   loop into a busy loop. Longer than `i32::MAX` ms (24 days) is capped.
    /// - A signal arriving while we sleep makes `epoll_wait` fail with `EINTR`;
    ///   that is not an error for the caller, so we wait again for whatever
    ///   time is left.
    /// - On return `events` holds only this call's events (possibly none, on
    ///   timeout).
    pub fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        if events.capacity() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Poll::poll needs room for at least one event: use Events::with_capacity(n) with n > 0",
            ));
        }
        let deadline = timeout.map(|timeout| Instant::now().checked_add(timeout));
        // epoll_wait takes at most c_int::MAX events.
        let max_events = events.list.capacity().min(libc::c_int::MAX as usize) as libc::c_int;
        loop {
            let timeout_ms = match deadline {
                None => -1, // block until an event arrives
                Some(Some(deadline)) => round_up_to_ms(deadline.saturating_duration_since(Instant::now())),
                Some(None) => libc::c_int::MAX, // now + timeout overflowed: as good as forever
            };
            events.list.clear();
            counting::count(Syscall::EpollWait);
            // SAFETY: the pointer and `max_events` describe the Vec's spare
            // capacity (len is 0 after clear), so the kernel writes at most
            // `max_events` epoll_event structs into memory we own; the fd is
            // a live epoll instance owned by `self`.
            let result = syscall!(unsafe {
                libc::epoll_wait(self.registry.epoll.as_raw_fd(), events.list.as_mut_ptr(), max_events, timeout_ms)
            });
            match result {
                Ok(ready) => {
                    // SAFETY: the kernel initialised exactly `ready` entries
                    // (0 <= ready <= max_events <= capacity).
                    unsafe { events.list.set_len(ready as usize) };
                    return Ok(());
                }
                // Interrupted by a signal: go round again with the time left.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
    // ANCHOR_END: poll_wait
}

/// A duration as `epoll_wait`'s millisecond timeout, rounded up so that a
/// non-zero wait never becomes 0 ms ("don't wait at all").
fn round_up_to_ms(duration: Duration) -> libc::c_int {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

// ANCHOR: registry
impl Registry {
    /// Starts watching `source` for `interest`; its events carry `token`
    /// (`epoll_ctl(EPOLL_CTL_ADD)`).
    ///
    /// The source should be in non-blocking mode (e.g.
    /// `TcpStream::set_nonblocking(true)`): `epoll` says a read *would* not
    /// block, and the read that follows must be allowed to say `WouldBlock`
    /// when someone else got there first. Registering the same fd twice is
    /// `EEXIST`; a regular file is `EPERM` (see the chapter: it is always
    /// ready).
    pub fn register(&self, source: &impl AsRawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, source.as_raw_fd(), Some((token, interest)))
    }

    /// Changes the token or interest of a registered source
    /// (`epoll_ctl(EPOLL_CTL_MOD)`); also re-arms a [`Interest::ONESHOT`]
    /// source that has fired.
    pub fn reregister(&self, source: &impl AsRawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, source.as_raw_fd(), Some((token, interest)))
    }

    /// Stops watching `source` (`epoll_ctl(EPOLL_CTL_DEL)`).
    ///
    /// Closing an fd also removes it, but only once every duplicate of it
    /// (`dup`, `fork`) is closed too, so deregistering explicitly is clearer.
    pub fn deregister(&self, source: &impl AsRawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, source.as_raw_fd(), None)
    }

    /// A second handle to the same event queue (the fd is duplicated), e.g.
    /// for a thread that registers while another polls.
    pub fn try_clone(&self) -> io::Result<Registry> {
        Ok(Registry { epoll: self.epoll.try_clone()? })
    }

    /// The one place that calls `epoll_ctl`.
    fn ctl(&self, op: libc::c_int, fd: RawFd, registration: Option<(Token, Interest)>) -> io::Result<()> {
        // `libc::epoll_event` is the kernel's struct: `events` is the bitmask
        // and `u64` is 8 bytes the kernel stores and hands back untouched; we
        // put the token there. (On x86-64 the struct is `repr(packed)`, 12
        // bytes, to match the kernel's layout; using libc's definition instead
        // of writing our own keeps that right on every CPU.)
        let mut event = match registration {
            Some((token, interest)) => libc::epoll_event { events: interest.bits(), u64: token.0 as u64 },
            // EPOLL_CTL_DEL ignores the event, but kernels before 2.6.9
            // required a non-null pointer, so we pass one anyway.
            None => libc::epoll_event { events: 0, u64: 0 },
        };
        counting::count(Syscall::EpollCtl);
        // SAFETY: `event` is a valid epoll_event that lives across the call
        // (the kernel copies it and keeps no pointer to it); epoll_ctl checks
        // both fds itself and fails with EBADF/EPERM/... rather than misbehave.
        syscall!(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }
}
// ANCHOR_END: registry

/// The buffer [`Poll::poll`] fills: room for up to `capacity` events per call.
///
/// More ready sources than that is fine: the rest are reported on the next
/// call (the kernel round-robins them, so none starves).
pub struct Events {
    /// The kernel's own structs, exactly as `epoll_wait` writes them; `len`
    /// is how many the last call filled in.
    list: Vec<libc::epoll_event>,
}

impl Events {
    /// Room for up to `capacity` events per [`Poll::poll`].
    pub fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }

    /// The events the last [`Poll::poll`] reported.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Event> + '_ {
        self.list.iter().map(|raw| Event::from_raw(*raw))
    }

    /// How many events the last [`Poll::poll`] reported.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last [`Poll::poll`] reported nothing (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The most events one [`Poll::poll`] can report.
    pub fn capacity(&self) -> usize {
        self.list.capacity()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// ANCHOR: event
/// One ready source, as `epoll_wait` reported it: the [`Token`] we registered
/// it with, and what is ready.
///
/// "Ready" is a hint, not a promise: by the time we act another reader may
/// have taken the data, so the `read` that follows can still say
/// `WouldBlock`, and code must treat that as "wait for the next event".
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The token the source was registered with.
    token: Token,
    /// The kernel's `EPOLL*` bits for this source.
    flags: u32,
}

impl Event {
    /// Copies the two fields out of the kernel's (possibly packed) struct.
    fn from_raw(raw: libc::epoll_event) -> Event {
        // Reading a packed field by value is fine; taking a reference to it
        // would not be (it may be misaligned), which is why we copy.
        let (flags, data) = (raw.events, raw.u64);
        Event { token: Token(data as usize), flags }
    }

    /// Which source this is about.
    pub fn token(&self) -> Token {
        self.token
    }

    /// A read would not block: data arrived (`IN`), urgent data (`PRI`), or
    /// the peer closed (reading gives end of file).
    pub fn is_readable(&self) -> bool {
        self.has(libc::EPOLLIN) || self.has(libc::EPOLLPRI)
    }

    /// A write would not block (`OUT`); for a non-blocking `connect`, the
    /// handshake finished (check `take_error` to learn whether it worked).
    pub fn is_writable(&self) -> bool {
        self.has(libc::EPOLLOUT)
    }

    /// The peer will send nothing more: it closed its writing half (`RDHUP`,
    /// reported only if we asked for [`Interest::RDHUP`]) or the connection
    /// is gone entirely (`HUP`, always reported).
    pub fn is_read_closed(&self) -> bool {
        self.has(libc::EPOLLHUP) || self.has(libc::EPOLLRDHUP)
    }

    /// We can no longer write: the connection is gone (`HUP`) or broken (`ERR`).
    pub fn is_write_closed(&self) -> bool {
        self.has(libc::EPOLLHUP) || self.has(libc::EPOLLERR)
    }

    /// The source has a pending error (`ERR`, always reported), e.g. a
    /// refused `connect`; `TcpStream::take_error` says which.
    pub fn is_error(&self) -> bool {
        self.has(libc::EPOLLERR)
    }

    /// The raw `EPOLL*` bits the kernel reported.
    pub fn bits(&self) -> u32 {
        self.flags
    }

    /// The reported bits, printable: `0b…_0101 (IN|OUT)`.
    pub fn flags(&self) -> Flags {
        Flags(self.flags)
    }

    fn has(&self, flag: libc::c_int) -> bool {
        self.flags & flag as u32 != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Event {{ token: {}, flags: {} }}", self.token.0, self.flags())
    }
}
// ANCHOR_END: event

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_prints_its_bits_and_names() {
        assert_eq!(
            (Interest::READABLE | Interest::EDGE).to_string(),
            "0b1000_0000_0000_0000_0000_0000_0000_0001 (IN|ET)"
        );
        assert_eq!(format!("{:?}", Interest::WRITABLE), "0b0000_0000_0000_0000_0000_0000_0000_0100 (OUT)");
        assert_eq!(
            (Interest::READABLE | Interest::WRITABLE | Interest::RDHUP | Interest::ONESHOT).to_string(),
            "0b0100_0000_0000_0000_0010_0000_0000_0101 (IN|OUT|RDHUP|ONESHOT)"
        );
        assert_eq!(Flags(0).to_string(), "0b0000_0000_0000_0000_0000_0000_0000_0000 (none)");
        assert_eq!(Flags(0x100).to_string(), "0b0000_0000_0000_0000_0000_0001_0000_0000 (0x100)");
    }

    #[test]
    fn interest_bits_are_the_kernels() {
        assert_eq!(Interest::READABLE.bits(), 0x1);
        assert_eq!(Interest::WRITABLE.bits(), 0x4);
        assert_eq!(Interest::RDHUP.bits(), 0x2000);
        assert_eq!(Interest::ONESHOT.bits(), 1 << 30);
        assert_eq!(Interest::EDGE.bits(), 1 << 31);
        let both = Interest::READABLE | Interest::WRITABLE;
        assert!(both.contains(Interest::READABLE) && both.contains(Interest::WRITABLE));
        assert!(!Interest::READABLE.contains(both));
        let mut grown = Interest::READABLE;
        grown |= Interest::EDGE;
        assert_eq!(grown, Interest::READABLE | Interest::EDGE);
        assert_eq!(Interest::READABLE.add(Interest::EDGE), grown);
    }

    #[test]
    fn timeouts_round_up_never_down_to_zero() {
        assert_eq!(round_up_to_ms(Duration::ZERO), 0);
        assert_eq!(round_up_to_ms(Duration::from_nanos(1)), 1);
        assert_eq!(round_up_to_ms(Duration::from_micros(999)), 1);
        assert_eq!(round_up_to_ms(Duration::from_millis(1)), 1);
        assert_eq!(round_up_to_ms(Duration::from_micros(1001)), 2);
        assert_eq!(round_up_to_ms(Duration::from_secs(u64::MAX)), libc::c_int::MAX);
    }

    #[test]
    fn events_with_no_room_is_a_clear_error() {
        let mut poll = Poll::new().unwrap();
        let err = poll.poll(&mut Events::with_capacity(0), Some(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
