//! The check of exercise 3.1: a socket pair registered edge-triggered, fed
//! more than one chunk at a time; after each event, `drain` must leave
//! nothing behind, because epoll will not report what is left.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ch03_epoll::poll::{Events, Interest, Poll, Token};
use ch03_exercises::drain::{Drained, drain};
use exercise_harness::{Verdict, ensure};

/// The reader's token.
const READER: Token = Token(1);

/// The chunk `drain` gets: much smaller than what arrives at once.
const CHUNK: usize = 64;

pub fn check() -> Verdict {
    let mut chunk = [0u8; CHUNK];
    let (mut writer, mut reader) = UnixStream::pair().map_err(|e| format!("socketpair failed: {e}"))?;
    reader.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    poll.registry().register(&reader, READER, Interest::READABLE | Interest::EDGE).map_err(|e| e.to_string())?;

    let empty = drain(&mut reader, &mut [], &mut Vec::new());
    ensure!(
        empty.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput),
        "drain with an empty chunk returned {empty:?}: a read into no room returns 0, which looks like \"closed\"; \
         say InvalidInput instead"
    );

    for (round, size) in [(1, 1000), (2, 10)] {
        let sent: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        writer.write_all(&sent).map_err(|e| e.to_string())?;
        wait_for_event(&mut poll)?;
        let mut got = Vec::new();
        let ended = drain(&mut reader, &mut chunk, &mut got);
        let ended = ended.map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => "drain returned the error WouldBlock: on a non-blocking socket that means \
                 \"nothing more right now\", the normal end of a drain; return Ok(Drained::WouldBlock)"
                .to_string(),
            _ => format!("drain failed: {e}"),
        })?;
        ensure!(
            got.len() == size,
            "event {round}: {size} bytes were waiting and drain read {} of them ({CHUNK} at most per read). With \
             EDGE, epoll reported their arrival once; what is left unread is not reported again until more data \
             arrives. Read until WouldBlock.",
            got.len()
        );
        ensure!(got == sent, "event {round}: drain read {size} bytes, but not the ones sent, or not in order");
        ensure!(ended == Drained::WouldBlock, "event {round}: drain ended with {ended:?}; the writer is still open");
    }

    drop(writer);
    wait_for_event(&mut poll)?;
    let mut got = Vec::new();
    let ended = drain(&mut reader, &mut chunk, &mut got).map_err(|e| format!("drain failed: {e}"))?;
    ensure!(
        ended == Drained::Closed && got.is_empty(),
        "after the writer closed, drain returned {ended:?} with {} bytes; expected Drained::Closed and no bytes \
         (a read of 0 bytes means the peer closed)",
        got.len()
    );
    Ok(())
}

/// Waits (boundedly) for the reader's event.
fn wait_for_event(poll: &mut Poll) -> Result<(), String> {
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(10))).map_err(|e| format!("Poll::poll failed: {e}"))?;
    ensure!(
        events.iter().any(|event| event.token() == READER),
        "epoll reported nothing although data was sent (a bug in the check, not in your code)"
    );
    Ok(())
}
