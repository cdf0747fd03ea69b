//! Cancellation safety: what each leaf future loses when it is dropped
//! before it finishes, as the loser of a race (`timeout` here; a
//! `select`-style loop the same way).
//!
//! - `write` and `recv` lose nothing: they make their change in the same
//!   poll that returns `Ready` with it, so a dropped one made none.
//! - `read_to_end` loses nothing either: every byte it read is already in
//!   the caller's `Vec`.
//! - `write_all` loses its count: the bytes it wrote before the drop are
//!   gone to the peer, and the caller cannot know how many.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ch05_runtime::Runtime;
use ch05_runtime::channel::channel;
use ch05_runtime::net::{TcpListener, TcpStream};
use ch05_runtime::time::timeout;

/// How long each race gives the racer before the timer wins it.
const ROUND: Duration = Duration::from_millis(10);

/// More than the kernel's socket buffers hold on both sides, so a peer
/// that does not read makes every write wait.
const MORE_THAN_THE_BUFFERS: usize = 32 * 1024 * 1024;

/// A connected pair on loopback.
fn pair(runtime: &Runtime) -> io::Result<(TcpStream, TcpStream)> {
    runtime.block_on(async {
        let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let connecting = TcpStream::connect(listener.local_addr()?).await?;
        let (accepted, _) = listener.accept().await?;
        Ok((connecting, accepted))
    })
}

/// Everything the peer receives until the writer closes.
fn received(runtime: &Runtime, peer: &mut TcpStream) -> io::Result<usize> {
    let mut all = Vec::new();
    runtime.block_on(peer.read_to_end(&mut all))
}

#[test]
fn write_all_dropped_midway_sent_bytes_the_caller_cannot_count() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let (mut writer, mut peer) = pair(&runtime)?;
    let data = vec![7u8; MORE_THAN_THE_BUFFERS];
    // The peer does not read: `write_all` fills the buffers, waits, and the
    // timer wins the race. All the caller learns is `Err(Elapsed)`.
    let raced = runtime.block_on(timeout(ROUND, writer.write_all(&data)));
    assert!(raced.is_err(), "the timer must win: the peer reads nothing");
    drop(writer);
    // Yet part of `data` went out, and only the peer can say how much: a
    // caller that tried `write_all(&data)` again would send that part twice.
    let sent = received(&runtime, &mut peer)?;
    assert!(0 < sent && sent < data.len(), "{sent} of {} bytes", data.len());
    Ok(())
}

#[test]
fn write_in_a_loop_keeps_its_count_across_cancelled_rounds() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let (mut writer, mut peer) = pair(&runtime)?;
    let data = vec![7u8; MORE_THAN_THE_BUFFERS];
    // The cancellation-safe way: the position lives in the caller, and each
    // round races one `write`, which either returns what it wrote or, if it
    // is dropped, wrote nothing.
    let (mut sent, mut lost_rounds) = (0, 0);
    while lost_rounds < 3 {
        match runtime.block_on(timeout(ROUND, writer.write(&data[sent..]))) {
            Ok(wrote) => sent += wrote?,
            Err(_) => lost_rounds += 1,
        }
    }
    drop(writer);
    assert!(sent > 0);
    assert_eq!(received(&runtime, &mut peer)?, sent, "every byte written is counted");
    Ok(())
}

#[test]
fn read_to_end_dropped_midway_leaves_what_it_read_in_the_callers_vec() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let (mut reader, mut peer) = pair(&runtime)?;
    runtime.block_on(peer.write_all(b"hello"))?;
    // No end of file yet, so `read_to_end` cannot finish: each round, the
    // timer wins. Whatever a round read before it lost stays in `out`.
    let mut out = Vec::new();
    let mut rounds = 0;
    while out.is_empty() {
        let raced = runtime.block_on(timeout(ROUND, reader.read_to_end(&mut out)));
        assert!(raced.is_err(), "no end of file was sent: {raced:?}");
        rounds += 1;
        assert!(rounds < 1000, "the bytes never arrived (or were read and lost)");
    }
    assert_eq!(out, b"hello", "dropped midway, nothing it read is lost");
    // A new `read_to_end` goes on from there.
    runtime.block_on(peer.write_all(b" world"))?;
    drop(peer);
    assert_eq!(runtime.block_on(reader.read_to_end(&mut out))?, 6);
    assert_eq!(out, b"hello world");
    Ok(())
}

#[test]
fn recv_woken_and_then_dropped_loses_no_message() {
    let (tx, mut rx) = channel::<u32>();
    {
        let mut recv = pin!(rx.recv());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(recv.as_mut().poll(&mut cx), Poll::Pending);
        tx.send(7).expect("the receiver is alive"); // wakes the waiting `recv` ...
    } // ... which is dropped before it is polled again: the loser of a race.
    // The value was never taken: `poll_recv` pops only in the poll that
    // returns it.
    assert_eq!(rx.try_recv(), Some(7));
}
