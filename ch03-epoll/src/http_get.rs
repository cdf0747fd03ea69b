//! One HTTP GET on a non-blocking socket, as a state machine that never
//! waits.
//!
//! A blocking client (chapter 1) is a straight line: connect, write, read
//! until the end; each step sleeps until it is done. On a non-blocking socket
//! every step can stop half-way with `WouldBlock` ("nothing to do right now,
//! try again when the socket is ready"). So the request remembers how far it
//! got, and [`HttpGet::advance`] continues from there each time the event
//! queue says the socket is ready:
//!
//! ```text
//!  Connecting ──connected──► Sending ──all bytes written──► Receiving ──end of file──► Done
//!      │                       │                               │
//!      └── refused / error ────┴──────── error ────────────────┴──────────────────────► Done
//! ```
//!
//! The same state machine runs under our [`poll`](crate::poll) module
//! ([`client`](crate::client)) and under mio ([`mio_client`](crate::mio_client)):
//! only the event queue changes, which is the point of the chapter's last step.
//!
//! Two rules keep it correct when events are not what they seem:
//!
//! - An event is a hint. `advance` ignores which flags were set and simply
//!   tries to make progress until the socket says `WouldBlock`, so a spurious
//!   event costs one failed syscall, and an event that carries several
//!   things at once (data *and* end of file) is handled completely.
//! - The answer is handed out once. When the exchange finishes, `advance`
//!   returns `Some(result)` and moves to `Done`; every later call returns
//!   `None` and does no I/O. A repeated "peer closed" event can therefore
//!   never count the same end of file twice.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use ch01_os_threads::client::connect_error;
use ch01_os_threads::http::{self, Response};

/// The largest response we accept. The delay server sends a few hundred
/// bytes; a peer that sends megabytes is misbehaving, and buffering it all
/// would let it use up our memory.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What the state machine needs from a non-blocking TCP stream, so that both
/// `std::net::TcpStream` (under our `Poll`) and `mio::net::TcpStream` fit.
pub trait Connection: Read + Write {
    /// The socket's pending error (`SO_ERROR`), e.g. a refused connect.
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// The peer's address; fails with `NotConnected` while a connect is
    /// still in progress.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
}

impl Connection for std::net::TcpStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        std::net::TcpStream::take_error(self)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        std::net::TcpStream::peer_addr(self)
    }
}

impl Connection for mio::net::TcpStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        mio::net::TcpStream::take_error(self)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        mio::net::TcpStream::peer_addr(self)
    }
}

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The TCP handshake is in flight (a non-blocking `connect` returned
    /// `EINPROGRESS`). Writable means it finished, one way or the other.
    Connecting,
    /// Connected; writing the request, possibly a few bytes at a time.
    Sending,
    /// The whole request is written; reading the answer until end of file
    /// (the server sends `Connection: close`).
    Receiving,
    /// Finished, with a response or an error, already handed out.
    Done,
}

/// What one call to [`HttpGet::advance`] did.
#[derive(Debug)]
pub struct Progress {
    /// Request bytes written during this call.
    pub wrote: usize,
    /// Response bytes read during this call.
    pub read: usize,
    /// `Some` exactly once per exchange: on the call that finished it.
    pub finished: Option<io::Result<Response>>,
}

// ANCHOR: http_get
/// One `GET` on a non-blocking stream; see the module docs.
#[derive(Debug)]
pub struct HttpGet<S> {
    /// The socket. Non-blocking: every read and write may say `WouldBlock`.
    stream: S,
    /// The server, for error messages.
    addr: SocketAddr,
    /// The path asked for, for error messages.
    path: String,
    /// The whole request; `request[written..]` is still to be sent.
    request: Vec<u8>,
    /// How many request bytes the kernel has taken so far.
    written: usize,
    /// The response bytes read so far.
    response: Vec<u8>,
    /// Where we are.
    phase: Phase,
}

impl<S: Connection> HttpGet<S> {
    /// An exchange on `stream`, whose non-blocking connect to `addr` has
    /// been started (it may or may not have finished yet).
    pub fn new(stream: S, addr: SocketAddr, path: &str) -> HttpGet<S> {
        HttpGet {
            stream,
            addr,
            path: path.to_string(),
            request: http::request(addr, path),
            written: 0,
            response: Vec::new(),
            phase: Phase::Connecting,
        }
    }

    /// The socket (to register or deregister it).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The socket, mutably (mio's `register` takes `&mut`).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Where the exchange is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Makes all the progress the socket allows right now, without waiting.
    ///
    /// Call it whenever the event queue reports the socket (for any reason).
    /// Returns `finished: Some(..)` once, when the exchange ends.
    pub fn advance(&mut self) -> Progress {
        let mut progress = Progress { wrote: 0, read: 0, finished: None };
        if self.phase == Phase::Done {
            return progress; // already handed out: a late or repeated event
        }
        match self.step(&mut progress) {
            Ok(None) => {} // WouldBlock: wait for the next event
            Ok(Some(response)) => {
                self.phase = Phase::Done;
                progress.finished = Some(Ok(response));
            }
            Err(e) => {
                self.phase = Phase::Done;
                progress.finished = Some(Err(e));
            }
        }
        progress
    }

    /// Runs the phases in order until one would block (`Ok(None)`) or the
    /// answer is complete (`Ok(Some)`). Falling through from one phase to the
    /// next matters: one event may mean "connected" and "data arrived" at once.
    fn step(&mut self, progress: &mut Progress) -> io::Result<Option<Response>> {
        if self.phase == Phase::Connecting {
            // Writable (or an error) after a non-blocking connect: ask the
            // socket how it went. A refused connect leaves its error here.
            if let Some(e) = self.stream.take_error()? {
                return Err(connect_error(self.addr, e));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.phase = Phase::Sending,
                // Not connected yet: the event was about something else.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                Err(e) => return Err(connect_error(self.addr, e)),
            }
        }
        if self.phase == Phase::Sending {
            while self.written < self.request.len() {
                match self.stream.write(&self.request[self.written..]) {
                    Ok(0) => return Err(self.context(io::ErrorKind::WriteZero.into())),
                    // A partial write is normal: remember how far we got.
                    Ok(n) => {
                        self.written += n;
                        progress.wrote += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.context(e)),
                }
            }
            self.phase = Phase::Receiving;
        }
        // Receiving. With edge-triggered events we must read until the kernel
        // says WouldBlock: data left in the buffer would never be reported again.
        let mut buffer = [0u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                // End of file: the server closed, the answer is complete.
                Ok(0) => {
                    let bytes = std::mem::take(&mut self.response);
                    return http::parse_response(&bytes).map(Some).map_err(|e| self.context(e));
                }
                Ok(n) => {
                    progress.read += n;
                    append_response(&mut self.response, &buffer[..n]).map_err(|e| self.context(e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.context(e)),
            }
        }
    }

    /// An error that says which request it belongs to.
    fn context(&self, e: io::Error) -> io::Error {
        request_error(self.addr, &self.path, e)
    }
}
// ANCHOR_END: http_get

/// Adds `bytes` to the part of a response read so far, unless that would
/// make it longer than [`MAX_RESPONSE_BYTES`].
pub(crate) fn append_response(response: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    if response.len() + bytes.len() > MAX_RESPONSE_BYTES {
        let why = format!("response is larger than {MAX_RESPONSE_BYTES} bytes");
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    response.extend_from_slice(bytes);
    Ok(())
}

/// `e`, saying which request it belongs to: `GET /1/x from 127.0.0.1:8080: ...`.
pub(crate) fn request_error(addr: SocketAddr, path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("GET {path} from {addr}: {e}"))
}

/// What the event loop did with one event; the demo prints these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The request the event was for (its token).
    pub token: usize,
    /// What the event queue reported: the raw epoll flags under our `Poll`
    /// (`IN|OUT`), mio's portable words under mio (`readable|writable`), or,
    /// under io_uring, the operation that completed and its result (`RECV 106`).
    pub event: String,
    /// Request bytes written while handling it.
    pub wrote: usize,
    /// Response bytes read while handling it.
    pub read: usize,
    /// What became of the request.
    pub outcome: StepOutcome,
}

/// The state of a request after one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Still going: waiting for the next event.
    Waiting,
    /// Finished with this body.
    Answered(String),
    /// Finished with this error.
    Failed(String),
    /// The event arrived after the request had finished (its token is no
    /// longer in use), and was ignored.
    Stale,
}

impl Step {
    /// Builds the step for one `advance`.
    pub(crate) fn new(token: usize, event: String, progress: &Progress) -> Step {
        let outcome = match &progress.finished {
            None => StepOutcome::Waiting,
            Some(Ok(response)) => StepOutcome::Answered(response.body.clone()),
            Some(Err(e)) => StepOutcome::Failed(e.to_string()),
        };
        Step { token, event, wrote: progress.wrote, read: progress.read, outcome }
    }
}

impl std::fmt::Display for Step {
    /// `token 3  IN|OUT  wrote 58 B, read 0 B  waiting`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token {:<2} {:<29} wrote {:>3} B, read {:>3} B  ", self.token, self.event, self.wrote, self.read)?;
        match &self.outcome {
            StepOutcome::Waiting => f.write_str("waiting"),
            StepOutcome::Answered(body) => write!(f, "answered {body:?}"),
            StepOutcome::Failed(why) => write!(f, "failed: {why}"),
            StepOutcome::Stale => f.write_str("already finished: ignored"),
        }
    }
}

/// The error of a request still unfinished when the batch's timeout (`after`)
/// ran out: the clients never wait forever.
pub fn timed_out(addr: SocketAddr, path: &str, after: std::time::Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("GET {path} from {addr}: no complete answer within {after:?}"))
}

/// The error for a batch timeout so large that "now + timeout" does not fit
/// in the clock (e.g. `Duration::MAX`): refused instead of overflowing.
pub fn too_long(timeout: std::time::Duration) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("a timeout of {timeout:?} is too long to wait for"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted socket: each read and write takes its answer from a list,
    /// so the test decides exactly where `WouldBlock`, partial writes and
    /// end of file happen. Any I/O after the script ends is a test failure.
    struct Scripted {
        /// Whether the handshake has finished (`peer_addr` succeeds).
        connected: bool,
        /// Per `write` call: how many bytes the kernel accepts (`None` = WouldBlock).
        writes: VecDeque<Option<usize>>,
        /// Per `read` call: bytes to hand out (`None` = WouldBlock, empty = end of file).
        reads: VecDeque<Option<Vec<u8>>>,
        /// Everything written, to check the request arrived whole.
        sent: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.reads.pop_front().expect("read after the script ended") {
                None => Err(io::ErrorKind::WouldBlock.into()),
                Some(bytes) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self.writes.pop_front().expect("write after the script ended") {
                None => Err(io::ErrorKind::WouldBlock.into()),
                Some(n) => {
                    let n = n.min(buf.len());
                    self.sent.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for Scripted {
        fn take_error(&self) -> io::Result<Option<io::Error>> {
            Ok(None)
        }
        fn peer_addr(&self) -> io::Result<SocketAddr> {
            if self.connected { Ok(addr()) } else { Err(io::ErrorKind::NotConnected.into()) }
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn survives_spurious_events_partial_writes_and_pieces_and_answers_once() {
        let request_len = http::request(addr(), "/1/hello").len();
        let mut writes: VecDeque<Option<usize>> = VecDeque::from([Some(10), None]); // partial, then full buffer
        writes.push_back(Some(request_len - 10)); // the rest, on the next event
        let reads = VecDeque::from([
            None,                           // spurious: readable, but nothing there
            Some(RESPONSE[..7].to_vec()),   // a piece
            None,                           // drained for now
            Some(RESPONSE[7..20].to_vec()), // more pieces, then data and end of file
            Some(RESPONSE[20..].to_vec()),  // in the same event
            Some(Vec::new()),
        ]);
        let stream = Scripted { connected: false, writes, reads, sent: Vec::new() };
        let mut get = HttpGet::new(stream, addr(), "/1/hello");

        // An event before the handshake finished: nothing happens.
        let p = get.advance();
        assert_eq!((p.wrote, p.read, p.finished.is_none(), get.phase()), (0, 0, true, Phase::Connecting));

        get.stream_mut().connected = true;
        let p = get.advance(); // writes 10 bytes, then WouldBlock
        assert_eq!((p.wrote, get.phase()), (10, Phase::Sending));
        let p = get.advance(); // the rest; then reading finds nothing yet (spurious)
        assert_eq!((p.wrote, p.read, get.phase()), (request_len - 10, 0, Phase::Receiving));
        let p = get.advance(); // a piece
        assert_eq!((p.read, p.finished.is_none()), (7, true));
        let p = get.advance(); // the rest and end of file, handled in one go
        assert_eq!(p.read, RESPONSE.len() - 7);
        assert_eq!(p.finished.expect("finished").unwrap().body, "hello");
        assert_eq!(get.stream().sent, http::request(addr(), "/1/hello"));

        // Repeated events after the end: no I/O (the script is empty and
        // would panic), no second answer.
        for _ in 0..3 {
            let p = get.advance();
            assert_eq!((p.wrote, p.read, p.finished.is_none(), get.phase()), (0, 0, true, Phase::Done));
        }
    }

    #[test]
    fn an_error_is_handed_out_once_too() {
        let reads =
            VecDeque::from([Some(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhi".to_vec()), Some(Vec::new())]);
        let stream = Scripted { connected: true, writes: VecDeque::from([Some(usize::MAX)]), reads, sent: Vec::new() };
        let mut get = HttpGet::new(stream, addr(), "/1/hi");
        let err = get.advance().finished.expect("finished").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("GET /1/hi from 127.0.0.1:9: "), "{err}");
        assert!(get.advance().finished.is_none());
    }
}
