//! Behaviour of the `poll` module on real sockets: Unix socket pairs (a write
//! on one end is in the other end's buffer before `write` returns, so
//! readiness is already decided when we poll) and TCP on 127.0.0.1.
//!
//! "Nothing is reported" is checked with `Some(Duration::ZERO)`: the poll only
//! looks, and because the data (or its absence) is already in place, the
//! answer is deterministic without waiting.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ch03_epoll::poll::{Events, Interest, Poll, Token};

mod common;
use common::{SHOULD_NOT_TAKE, poll_now, poll_until_event};

#[test]
fn level_triggered_reports_unread_data_on_every_poll() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    poll.registry().register(&reader, Token(1), Interest::READABLE)?;
    assert!(poll_now(&mut poll)?.is_empty(), "nothing written yet");

    writer.write_all(b"hello")?;
    for _ in 0..3 {
        let events = poll_until_event(&mut poll)?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].token(), Token(1));
        assert!(events[0].is_readable());
    }

    // Reading only part of the data: still readable.
    let mut buf = [0u8; 2];
    reader.read_exact(&mut buf)?;
    assert_eq!(poll_now(&mut poll)?.len(), 1);

    // Drained: silent.
    let mut rest = [0u8; 16];
    assert_eq!(reader.read(&mut rest)?, 3);
    assert!(poll_now(&mut poll)?.is_empty());
    Ok(())
}

#[test]
fn edge_triggered_reports_once_until_new_data_arrives() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, mut reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    poll.registry().register(&reader, Token(2), Interest::READABLE | Interest::EDGE)?;

    writer.write_all(b"first")?;
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    assert!(events[0].is_readable());

    // The data is still unread, but the edge has passed: no second report.
    assert!(poll_now(&mut poll)?.is_empty());
    assert!(poll_now(&mut poll)?.is_empty());

    // New data is a new edge.
    writer.write_all(b"second")?;
    assert_eq!(poll_until_event(&mut poll)?.len(), 1);
    assert!(poll_now(&mut poll)?.is_empty());

    // Both writes are still there for a reader that drains properly.
    let mut all = Vec::new();
    let mut buf = [0u8; 4];
    loop {
        match reader.read(&mut buf) {
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    assert_eq!(all, b"firstsecond");
    Ok(())
}

#[test]
fn oneshot_reports_once_until_reregistered() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, reader) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    poll.registry().register(&reader, Token(3), Interest::READABLE | Interest::ONESHOT)?;

    writer.write_all(b"x")?;
    assert_eq!(poll_until_event(&mut poll)?.len(), 1);

    // Disabled after firing, even with more data arriving.
    assert!(poll_now(&mut poll)?.is_empty());
    writer.write_all(b"y")?;
    assert!(poll_now(&mut poll)?.is_empty());

    // Re-armed (here with a new token): reports again, once.
    poll.registry().reregister(&reader, Token(33), Interest::READABLE | Interest::ONESHOT)?;
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].token(), Token(33));
    assert!(poll_now(&mut poll)?.is_empty());
    Ok(())
}

#[test]
fn deregister_stops_events() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, reader) = UnixStream::pair()?;
    poll.registry().register(&reader, Token(4), Interest::READABLE)?;
    writer.write_all(b"x")?;
    assert_eq!(poll_until_event(&mut poll)?.len(), 1);

    poll.registry().deregister(&reader)?;
    assert!(poll_now(&mut poll)?.is_empty());
    writer.write_all(b"y")?;
    assert!(poll_now(&mut poll)?.is_empty());

    // Deregistering twice, or changing a source that is not registered, is
    // an error from the kernel (ENOENT), not silence.
    assert_eq!(poll.registry().deregister(&reader).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    let err = poll.registry().reregister(&reader, Token(4), Interest::READABLE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    Ok(())
}

#[test]
fn registering_twice_is_an_error() -> io::Result<()> {
    let poll = Poll::new()?;
    let (_writer, reader) = UnixStream::pair()?;
    poll.registry().register(&reader, Token(5), Interest::READABLE)?;
    let err = poll.registry().register(&reader, Token(6), Interest::READABLE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    Ok(())
}

#[test]
fn peer_close_is_reported_as_read_closed() -> io::Result<()> {
    // Unix socket pair: the peer going away closes both directions (HUP).
    let mut poll = Poll::new()?;
    let (writer, reader) = UnixStream::pair()?;
    poll.registry().register(&reader, Token(7), Interest::READABLE)?;
    assert!(poll_now(&mut poll)?.is_empty());
    drop(writer);
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    assert!(events[0].is_read_closed(), "{:?}", events[0]);
    assert!(events[0].is_readable(), "end of file is readable: read returns 0");

    // TCP: the peer closing only says "no more data from me" (a half-close):
    // RDHUP, reported because we asked for it; we could still write.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server_side, _) = listener.accept()?;
    poll.registry().register(&client, Token(8), Interest::READABLE | Interest::RDHUP)?;
    server_side.shutdown(Shutdown::Write)?;
    let events = poll_until_event(&mut poll)?;
    let event = events.iter().find(|e| e.token() == Token(8)).expect("an event for the TCP client");
    assert!(event.is_read_closed(), "{event:?}");
    assert!(!event.is_write_closed(), "only the peer's writing half is closed: {event:?}");
    Ok(())
}

#[test]
fn a_timeout_with_no_events_returns_empty() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, mut reader) = UnixStream::pair()?;
    poll.registry().register(&reader, Token(9), Interest::READABLE)?;
    let mut events = Events::with_capacity(4);
    writer.write_all(b"x")?;
    poll.poll(&mut events, SHOULD_NOT_TAKE)?;
    assert_eq!(events.len(), 1);
    reader.read_exact(&mut [0u8; 1])?;

    // Nothing ready now: the poll returns when the timeout passes, and the
    // event from the call before does not survive into this one.
    poll.poll(&mut events, Some(Duration::from_millis(20)))?;
    assert!(events.is_empty());
    assert_eq!(events.len(), 0);
    assert_eq!(events.iter().count(), 0);
    // A sub-millisecond timeout is rounded up to 1 ms, and returns too.
    poll.poll(&mut events, Some(Duration::from_nanos(1)))?;
    assert!(events.is_empty());
    Ok(())
}

#[test]
fn writable_is_reported_for_an_empty_send_buffer() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (a, _b) = UnixStream::pair()?;
    poll.registry().register(&a, Token(10), Interest::READABLE | Interest::WRITABLE)?;
    let events = poll_until_event(&mut poll)?;
    assert_eq!(events.len(), 1);
    assert!(events[0].is_writable() && !events[0].is_readable(), "{:?}", events[0]);
    assert_eq!(events[0].bits(), libc::EPOLLOUT as u32);
    assert_eq!(events[0].flags().to_string(), "0b0000_0000_0000_0000_0000_0000_0000_0100 (OUT)");
    Ok(())
}

#[test]
fn a_thousand_sockets_are_all_answered() -> io::Result<()> {
    // 2 000 fds: more than the usual default soft limit of 1 024.
    ch01_os_threads::sys::raise_open_files_limit()?;
    const N: usize = 1_000;
    let mut poll = Poll::new()?;
    let mut pairs = Vec::with_capacity(N);
    for i in 0..N {
        let (writer, reader) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        poll.registry().register(&reader, Token(i), Interest::READABLE)?;
        pairs.push((writer, reader));
    }
    for (writer, _) in &mut pairs {
        writer.write_all(b"!")?;
    }

    // A small buffer: the 1 000 events come over many polls, each at most once
    // because each handler drains its socket.
    let mut events = Events::with_capacity(64);
    let mut answered = HashSet::new();
    let mut polls = 0;
    while answered.len() < N {
        polls += 1;
        assert!(polls <= N, "{} of {N} answered after {polls} polls", answered.len());
        poll.poll(&mut events, SHOULD_NOT_TAKE)?;
        assert!(!events.is_empty());
        assert!(events.len() <= events.capacity());
        for event in events.iter() {
            let Token(i) = event.token();
            let mut byte = [0u8; 1];
            assert_eq!(pairs[i].1.read(&mut byte)?, 1);
            assert!(answered.insert(i), "socket {i} reported twice");
        }
    }
    assert!(poll_now(&mut poll)?.is_empty(), "all drained");
    Ok(())
}

#[test]
fn a_cloned_registry_registers_while_another_thread_polls() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let poller = std::thread::spawn(move || -> io::Result<Vec<Token>> {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, SHOULD_NOT_TAKE)?;
        Ok(events.iter().map(|e| e.token()).collect())
    });
    // Whether or not the poller is already asleep in epoll_wait, the
    // registration and the data reach it: the kernel holds both.
    let (mut writer, reader) = UnixStream::pair()?;
    registry.register(&reader, Token(42), Interest::READABLE)?;
    writer.write_all(b"wake up")?;
    assert_eq!(poller.join().unwrap()?, [Token(42)]);
    Ok(())
}
