//! Exercise 3.1, solved: read until the socket says "no more".

use std::io::{self, Read};

/// How a [`drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The source has nothing more to read right now (`WouldBlock`): wait
    /// for its next event.
    WouldBlock,
    /// The peer closed its end (a read returned 0 bytes): everything it sent
    /// has been read, and nothing more will come.
    Closed,
}

// ANCHOR: drain
/// Reads everything `source` (a non-blocking socket) has right now and
/// appends it to `into`, at most `chunk.len()` bytes per `read`.
pub fn drain(source: &mut impl Read, chunk: &mut [u8], into: &mut Vec<u8>) -> io::Result<Drained> {
    if chunk.is_empty() {
        // `read` into an empty buffer returns 0, which also means "closed".
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "drain needs a chunk of at least one byte"));
    }
    loop {
        match source.read(chunk) {
            Ok(0) => return Ok(Drained::Closed),
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            // Not a failure: the normal end of a drain. The next event says
            // when there is more.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
// ANCHOR_END: drain
