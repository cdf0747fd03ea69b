//! Exercise 3.3: a regular file, read without blocking the event loop.
//!
//! `epoll` refuses a regular file: a file is always "ready", yet a `read`
//! may still wait for the disk. (Opening can wait too: a FIFO's `open`
//! waits for a writer.) An event loop that must not stop can hand such work
//! to another thread, and have that thread tell the loop when it is done,
//! through something epoll *does* watch: a socket. Write that.
//!
//! Check it: `cargo run -p ch03-exercises -- 3`

// Starter code: the fields and `todo!()`s leave some names unused. Delete
// this line when your code uses them.
#![allow(unused_imports, unused_variables, dead_code)]

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::thread;

use ch03_epoll::poll::{Interest, Registry, Token};

/// A file being read on a thread of its own. The `Poll` whose registry it
/// was started with reports its token when the result is ready; then
/// [`BackgroundRead::take`] hands it out.
#[derive(Debug)]
pub struct BackgroundRead {
    /// Our end of a socket pair, registered for reading: the reading thread
    /// writes one byte into the other end when it is done. Dropping it
    /// closes the socket, which also takes it out of the event queue.
    #[expect(dead_code, reason = "never read: holding it keeps the registration alive")]
    wake: UnixStream,
    /// Where the reading thread leaves the file's contents (or its error).
    result: Receiver<io::Result<Vec<u8>>>,
}

/// Starts reading the whole file at `path` on a new thread and returns at
/// once. When the contents (or the error) are ready, the `Poll` that owns
/// `registry` reports `token` as readable.
pub fn read_in_background(path: &Path, registry: &Registry, token: Token) -> io::Result<BackgroundRead> {
    todo!("register a socket, start the thread that reads, return")
}

impl BackgroundRead {
    /// The file's contents, or why it could not be read, once the read is
    /// done; `None` before (an event is a hint: check, do not assume).
    /// After it returned `Some`, it returns `None`.
    pub fn take(&mut self) -> Option<io::Result<Vec<u8>>> {
        todo!("hand out the result if the reading thread left one")
    }
}
