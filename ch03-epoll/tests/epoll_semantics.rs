//! What the kernel really does behind `epoll`, each fact shown on real sockets.
//!
//! - Edge-triggered means "an event each time data *arrives*", not "an event
//!   when the buffer goes from empty to non-empty" (epoll(7), and
//!   `ep_poll_callback` in the kernel's `fs/eventpoll.c`, which runs on every
//!   wake-up of the socket).
//! - There is no "registration after the edge" race: `EPOLL_CTL_ADD` and
//!   `EPOLL_CTL_MOD` look at the source's readiness *now* (`ep_insert` and
//!   `ep_modify` in `fs/eventpoll.c`).
//! - epoll watches an open file description, not an fd number: a `dup`
//!   keeps a closed fd's registration alive (epoll(7), Q6 and its answer).
//! - A failed non-blocking `connect` is reported as an event; *why* it failed
//!   is read from `SO_ERROR` (connect(2), `EINPROGRESS`).
//! - `EPOLLEXCLUSIVE` stops the kernel from telling every epoll instance
//!   about an event (epoll_ctl(2); the thundering herd).
//!
//! Readiness that is already in place is checked with a zero timeout (the
//! poll only looks); an event that must come is awaited with a generous
//! bound that only matters when the test fails.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;

use ch03_epoll::client::connect_nonblocking;
use ch03_epoll::poll::{Interest, Poll, Token};

mod common;
use common::{blocked_in_epoll_wait, poll_now, poll_until_event, wait_until};

/// Reads until `WouldBlock`: what an edge-triggered reader must do.
fn drain(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(all),
            Err(e) => return Err(e),
        }
    }
}

/// A connected TCP pair on 127.0.0.1: (client, server side).
fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server_side, _) = listener.accept()?;
    Ok((client, server_side))
}

#[test]
fn edge_triggered_reports_each_arriving_chunk_even_if_the_buffer_never_emptied() -> io::Result<()> {
    // TCP on loopback, like the chapter's client, then a Unix socket pair.
    let (mut writer, mut reader) = tcp_pair()?;
    reader.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&reader, Token(1), Interest::READABLE | Interest::EDGE)?;

    writer.write_all(b"first")?;
    assert_eq!(poll_until_event(&mut poll)?.len(), 1, "the first chunk is an edge");
    // Nothing read: "first" is still in the buffer, and with no new data
    // there is no new event.
    assert!(poll_now(&mut poll)?.is_empty());

    // The buffer never went empty, yet the second chunk is a second event:
    // the kernel's callback runs for every arrival and queues the socket
    // again (epoll(7): "multiple events can be generated upon receipt of
    // multiple chunks of data"; that is why EPOLLONESHOT exists).
    writer.write_all(b"second")?;
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].token(), Token(1));
    assert!(poll_now(&mut poll)?.is_empty());

    // Both chunks are there for a reader that drains. (TCP may deliver them
    // in any split, so wait until all eleven bytes are in.)
    let mut all = drain(&mut reader)?;
    while all.len() < b"firstsecond".len() {
        poll_until_event(&mut poll)?;
        all.extend(drain(&mut reader)?);
    }
    assert_eq!(all, b"firstsecond");

    // The same on a Unix socket pair, where each write is in the reader's
    // buffer before `write` returns.
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    poll.registry().register(&reader, Token(2), Interest::READABLE | Interest::EDGE)?;
    for (round, chunk) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
        writer.write_all(chunk)?;
        let events = poll_now(&mut poll)?;
        assert_eq!(events.len(), 1, "chunk {} is an event of its own, unread data or not", round + 1);
        assert_eq!(events[0].token(), Token(2));
    }
    assert_eq!(drain(&mut reader)?, b"abc");
    Ok(())
}

#[test]
fn chunks_that_arrive_between_two_waits_are_one_event() -> io::Result<()> {
    // "An event per chunk" means per arrival *while the socket is not already
    // queued*: a socket sits on the ready list at most once, so two arrivals
    // before one `epoll_wait` are reported together.
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&reader, Token(3), Interest::READABLE | Interest::EDGE)?;
    writer.write_all(b"one")?;
    writer.write_all(b"two")?;
    assert_eq!(poll_now(&mut poll)?.len(), 1);
    assert!(poll_now(&mut poll)?.is_empty());
    assert_eq!(drain(&mut reader)?, b"onetwo");
    Ok(())
}

#[test]
fn registering_a_socket_that_is_already_readable_reports_it() -> io::Result<()> {
    // The data arrives *before* the socket is registered: the edge happened
    // while nobody watched. EPOLL_CTL_ADD checks the socket's readiness there
    // and then (`ep_insert`: "If the file is already ready we drop it inside
    // the ready list"), so nothing is lost.
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.write_all(b"early")?;

    let mut poll = Poll::new()?;
    poll.registry().register(&reader, Token(4), Interest::READABLE | Interest::EDGE)?;
    let events = poll_now(&mut poll)?;
    assert_eq!(events.len(), 1, "data that was there before EPOLL_CTL_ADD is reported");
    assert!(events[0].is_readable());
    assert_eq!(drain(&mut reader)?, b"early");
    Ok(())
}

#[test]
fn reregistering_reports_readiness_that_is_already_there() -> io::Result<()> {
    // EPOLL_CTL_MOD checks readiness too (`ep_modify`): an edge-triggered
    // event that was taken but not acted on can be had again by re-registering.
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    let interest = Interest::READABLE | Interest::EDGE;
    poll.registry().register(&reader, Token(5), interest)?;
    writer.write_all(b"x")?;
    assert_eq!(poll_now(&mut poll)?.len(), 1);
    assert!(poll_now(&mut poll)?.is_empty(), "the edge is used up; the byte is unread");

    poll.registry().reregister(&reader, Token(5), interest)?;
    assert_eq!(poll_now(&mut poll)?.len(), 1, "EPOLL_CTL_MOD saw the unread byte");
    assert!(poll_now(&mut poll)?.is_empty());
    assert_eq!(drain(&mut reader)?, b"x");
    Ok(())
}

/// An fd *number*, nothing more: lets us hand `epoll_ctl` a number whose fd
/// we already closed. (Not a borrowed fd: nothing is promised to be open.)
struct FdNumber(RawFd);

impl AsRawFd for FdNumber {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn epoll_watches_the_open_file_description_not_the_fd_number() -> io::Result<()> {
    // `dup` makes a second fd for the same open file description. epoll keys
    // its registration on (that description, the fd number we registered),
    // and drops it only when the description's last fd is closed (epoll(7),
    // Q6/A6; `eventpoll_release` in fs/eventpoll.c runs on the final close).
    let (mut writer, reader) = UnixStream::pair()?;
    let duplicate = reader.try_clone()?; // dup(2)
    let registered_number = reader.as_raw_fd();
    let mut poll = Poll::new()?;
    // Level-triggered, so unread data is reported on every poll.
    poll.registry().register(&reader, Token(6), Interest::READABLE)?;
    writer.write_all(b"x")?;
    assert_eq!(poll_until_event(&mut poll)?.len(), 1);

    // Close the fd we registered. The duplicate keeps the description open,
    // so the registration lives on: events keep coming for a "closed" fd.
    drop(reader);
    let events = poll_now(&mut poll)?;
    assert_eq!(events.len(), 1, "still reported after the registered fd was closed");
    assert_eq!(events[0].token(), Token(6));

    // And it cannot be removed any more: through the duplicate it is not
    // registered (ENOENT: the key has the old number), and the old number
    // is closed (EBADF) or, if another thread's new fd got that number,
    // refers to a different file (ENOENT).
    let err = poll.registry().deregister(&duplicate).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    let err = poll.registry().deregister(&FdNumber(registered_number)).unwrap_err();
    assert!(matches!(err.raw_os_error(), Some(libc::EBADF | libc::ENOENT)), "{err}");
    assert_eq!(poll_now(&mut poll)?.len(), 1, "the registration survived both attempts");

    // Closing the last fd of the description ends the registration.
    drop(duplicate);
    assert!(poll_now(&mut poll)?.is_empty(), "gone once every duplicate is closed");
    Ok(())
}

/// `getsockopt(SO_ERROR)`: the socket's pending error, cleared by reading it.
/// (std's `TcpStream::take_error` is this call.)
fn so_error(socket: &impl AsRawFd) -> io::Result<i32> {
    let mut error: libc::c_int = 0;
    let mut length = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `length` are valid and writable, and `length` says
    // how many bytes `error` holds; the kernel writes at most that many.
    let result = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut error).cast(), &mut length)
    };
    if result == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(error)
}

#[test]
fn a_refused_non_blocking_connect_is_read_from_so_error() -> io::Result<()> {
    // A port nobody listens on: bind one, then close it.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;

    // connect(2) on a non-blocking socket returns EINPROGRESS at once: the
    // refusal (the peer's RST) is handled after the call, so it cannot be
    // the call's return value. `connect_nonblocking` passes EINPROGRESS as Ok.
    let stream = connect_nonblocking(closed)?;
    let mut poll = Poll::new()?;
    poll.registry().register(&stream, Token(7), Interest::READABLE | Interest::WRITABLE)?;
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    // The event says *that* the connect is over, and that it went wrong
    // (ERR, always reported, and HUP) ...
    assert!(events[0].is_error(), "{:?}", events[0]);
    // ... and SO_ERROR says *why* (connect(2): "use getsockopt(2) to read the
    // SO_ERROR option ... to determine whether connect() completed
    // successfully"). Reading it clears it.
    assert_eq!(so_error(&stream)?, libc::ECONNREFUSED);
    assert_eq!(so_error(&stream)?, 0, "reading SO_ERROR clears it");
    Ok(())
}

/// A raw epoll instance, for the one flag our `Interest` does not offer.
struct RawEpoll(OwnedFd);

impl RawEpoll {
    fn new() -> io::Result<RawEpoll> {
        // SAFETY: epoll_create1 takes only a flag.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(RawEpoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn add(&self, source: &impl AsRawFd, events: libc::c_int, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: events as u32, u64: data };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        let result =
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, source.as_raw_fd(), &mut event) };
        if result == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `epoll_wait` with a timeout in ms; returns how many events it reported.
    fn wait(&self, timeout_ms: libc::c_int) -> io::Result<usize> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        loop {
            // SAFETY: the buffer holds `events.len()` entries and outlives the call.
            let n = unsafe {
                libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), events.len() as libc::c_int, timeout_ms)
            };
            match n {
                -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
                -1 => return Err(io::Error::last_os_error()),
                n => return Ok(n as usize),
            }
        }
    }
}

/// Two epoll instances watch one socket, registered in this order with
/// `flags`. A thread sleeps in `epoll_wait` on the first; once `/proc` shows
/// it asleep, one byte arrives. Returns (events the sleeper got, events the
/// second instance reports when asked afterwards with a zero timeout).
fn one_byte_two_watchers(flags: libc::c_int) -> io::Result<(usize, usize)> {
    let (mut writer, reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    let (first, second) = (RawEpoll::new()?, RawEpoll::new()?);
    first.add(&reader, libc::EPOLLIN | flags, 1)?;
    second.add(&reader, libc::EPOLLIN | flags, 2)?;

    let (tid_tx, tid_rx) = mpsc::channel();
    let sleeper = thread::spawn(move || -> io::Result<usize> {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).map_err(io::Error::other)?;
        first.wait(20_000)
    });
    let tid = tid_rx.recv().map_err(io::Error::other)?;
    wait_until("the sleeper is in epoll_wait", || blocked_in_epoll_wait(tid));

    writer.write_all(b"!")?;
    let woken = sleeper.join().map_err(|_| io::Error::other("the sleeper panicked"))??;
    Ok((woken, second.wait(0)?))
}

#[test]
fn epollexclusive_stops_at_the_first_instance_with_a_sleeper() -> io::Result<()> {
    // Without EPOLLEXCLUSIVE every epoll instance that watches the socket is
    // told: with a thread asleep on each, every one of them wakes for one
    // byte that only one can read (the thundering herd).
    let (woken, second) = one_byte_two_watchers(0)?;
    assert_eq!((woken, second), (1, 1), "both instances heard about the byte");

    // With EPOLLEXCLUSIVE the kernel walks the socket's watchers in the order
    // they registered and stops after the first exclusive one that had a
    // thread asleep (`ep_poll_callback`'s `ewake` in fs/eventpoll.c): the
    // second instance is never told, though the byte is still unread.
    // (epoll_ctl(2) promises "one or more" instances get the event.)
    let (woken, second) = one_byte_two_watchers(libc::EPOLLEXCLUSIVE)?;
    assert_eq!((woken, second), (1, 0), "only the instance with a sleeper heard about the byte");
    Ok(())
}
