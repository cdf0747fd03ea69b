//! Exercise 3.1: read until the socket says "no more".
//!
//! An edge-triggered registration (`Interest::EDGE`) reports a socket when
//! new data *arrives*, not while data is *there*. Whatever the handler of an
//! event leaves unread is not reported again until more data arrives, maybe
//! never. So the handler must drain the socket: read until the kernel
//! answers `WouldBlock` ("nothing more right now"). Write that loop.
//!
//! Check it: `cargo run -p ch03-exercises -- 1`

// Starter code: `todo!()` leaves the arguments unused (and clippy then
// thinks a slice would do for `into`). Delete this line when your code uses them.
#![allow(unused_variables, clippy::ptr_arg)]

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

/// Reads everything `source` (a non-blocking socket) has right now and
/// appends it to `into`, at most `chunk.len()` bytes per `read`.
///
/// Ends with `Ok(Drained::WouldBlock)` or `Ok(Drained::Closed)`; a read
/// interrupted by a signal (`Interrupted`) is simply tried again; any other
/// error is returned. An empty `chunk` (which would read nothing, forever)
/// is an `InvalidInput` error.
pub fn drain(source: &mut impl Read, chunk: &mut [u8], into: &mut Vec<u8>) -> io::Result<Drained> {
    todo!("read into `chunk` and append to `into` until the source would block or is closed")
}
