//! Exercise 3.3, solved: a regular file, read without blocking the event loop.

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

// ANCHOR: read_in_background
/// Starts reading the whole file at `path` on a new thread and returns at
/// once. When the contents (or the error) are ready, the `Poll` that owns
/// `registry` reports `token` as readable.
pub fn read_in_background(path: &Path, registry: &Registry, token: Token) -> io::Result<BackgroundRead> {
    // epoll refuses a regular file (it is always "ready", and a read may
    // still wait for the disk), but it takes a socket: the thread that does
    // the blocking read tells the event loop through one.
    let (wake, done) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    // ONESHOT: one event, once. (Level-triggered alone would report the
    // socket on every poll after the thread is done, until it is dropped.)
    registry.register(&wake, token, Interest::READABLE | Interest::ONESHOT)?;
    let (send_result, result) = mpsc::channel();
    let path = path.to_path_buf();
    thread::Builder::new().name("background-read".into()).spawn(move || {
        // Even opening can block (a FIFO waits for a writer), so the
        // thread does all of it.
        let contents = std::fs::read(&path);
        // The result first, then the wake-up: whoever is woken finds it.
        let _ = send_result.send(contents);
        let _ = (&done).write_all(&[1]);
    })?;
    Ok(BackgroundRead { wake, result })
}
// ANCHOR_END: read_in_background

// ANCHOR: take
impl BackgroundRead {
    /// The file's contents, or why it could not be read, once the read is
    /// done; `None` before (an event is a hint: check, do not assume).
    /// After it returned `Some`, it returns `None`.
    pub fn take(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.result.try_recv().ok()
    }
}
// ANCHOR_END: take
