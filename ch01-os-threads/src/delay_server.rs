//! The delay server: a blocking HTTP/1.1 server with one OS thread per
//! connection.
//!
//! `GET /<delay_ms>/<message>` waits `delay_ms` milliseconds, then answers
//! `200 OK` with `<message>` as the body and closes the connection. Every
//! chapter sends it requests: the delay stands for "a slow database" or "a slow
//! remote service", so learners can see which waits overlap and which do not.
//!
//! It is written the way chapter 1 teaches, one thread per connection, and it
//! is careful about the ways a thread-per-connection server goes wrong:
//!
//! - a cap on connections, because every thread costs a stack and a kernel
//!   task; connections over the cap get `503 Service Unavailable`;
//! - an idle limit, because a client that connects and says nothing would
//!   otherwise hold a thread forever;
//! - watching the socket during the delay, because a client that gives up
//!   and closes its connection must not hold its slot until the delay ends;
//! - a limit on the size of the request head (`431`), and clear answers for a
//!   malformed request (`400`), another method (`405`) or a bad delay (`400`);
//! - a graceful shutdown that lets in-flight requests finish, but only for a
//!   bounded time.
//!
//! ```
//! use ch01_os_threads::{client, delay_server::{Config, DelayServer}, http};
//! # fn main() -> std::io::Result<()> {
//! let server = DelayServer::start(Config::default())?; // 127.0.0.1, OS-chosen port
//! let answer = client::get(server.addr(), &http::path(200, "hello"))?;
//! assert_eq!(answer.body, "hello");
//! server.shutdown()?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::{self, MAX_HEAD_BYTES, Reply, parse_request, reply};
use crate::{say, syscall};

/// How the server is set up. `Config::default()` is what the demos use.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:0`: loopback only, and port 0 asks
    /// the OS for a free port (read it back with [`DelayServer::addr`]).
    pub addr: SocketAddr,
    /// The most connections served at once; more get `503`. Default 1 024.
    pub max_connections: usize,
    /// Stack size of each connection thread. Default 128 KiB: a handler only
    /// parses a line and sleeps, so std's 2 MiB default would reserve 16 times
    /// more address space than it ever touches.
    pub stack_size: usize,
    /// How long a client may take to send its whole request before it is
    /// dropped. Default 10 s.
    pub idle_timeout: Duration,
    /// How long [`DelayServer::shutdown`] waits for in-flight requests before
    /// it cuts them short with `503`. Default 5 s.
    pub shutdown_grace: Duration,
    /// The listen backlog: how many finished TCP handshakes the kernel queues
    /// while the accept loop is busy (the kernel caps it at
    /// `net.core.somaxconn`). Default 4 096, so a burst of thousands of
    /// connections waits in the queue instead of being retried a second later.
    pub backlog: i32,
    /// Print a `[server]` line per request (the `serve` subcommand does).
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 1024,
            stack_size: 128 * 1024,
            idle_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            backlog: 4096,
            log_requests: false,
        }
    }
}

/// A running delay server. Dropping it shuts it down (see [`shutdown`](Self::shutdown)).
#[derive(Debug)]
pub struct DelayServer {
    /// Where it listens (with the real port when 0 was asked for).
    addr: SocketAddr,
    /// What the accept loop, the connections and `shutdown` share.
    shared: Arc<Shared>,
    /// The accept loop's thread; `None` once shut down.
    accept_thread: Option<JoinHandle<()>>,
}

/// What happened to the requests that were in flight when shutdown began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections open when shutdown began.
    pub in_flight: usize,
    /// Of those, how many were still open when the grace period ran out and
    /// were cut short (answered `503`, or closed if they had not sent a
    /// request yet).
    pub cut_short: usize,
}

/// State shared by the accept loop, the connection threads and `shutdown`.
#[derive(Debug)]
struct Shared {
    /// The settings the server started with.
    config: Config,
    /// Set once by `shutdown`; the accept loop checks it after every accept.
    stopping: AtomicBool,
    /// Numbers connection threads, for their names and the request log.
    next_id: AtomicU64,
    /// The open connections (see [`Connections`]).
    connections: Mutex<Connections>,
    /// `shutdown` waits here for the last connection to close.
    all_closed: Condvar,
}

/// Book-keeping of open connections, behind one mutex.
#[derive(Debug, Default)]
struct Connections {
    /// The fds of open connections. A fd is removed (under the lock) before its
    /// socket is closed, so every fd in here is still open.
    open: HashSet<RawFd>,
    /// Set when the grace period is over: waiting handlers answer 503.
    aborting: bool,
}

impl Shared {
    /// A `[server #id]` line, if the server logs.
    fn log(&self, id: u64, text: &str) {
        if self.config.log_requests {
            say!(format!("server #{id}"), "{text}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connections> {
        // No code panics while holding this lock, but if one ever did, the
        // book-keeping would still be consistent, so carry on rather than
        // turning one failure into a crash of the whole server.
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DelayServer {
    /// Binds the listener and starts the accept loop on its own thread.
    pub fn start(config: Config) -> io::Result<DelayServer> {
        let listener = TcpListener::bind(config.addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.addr)))?;
        set_backlog(&listener, config.backlog)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(Connections::default()),
            all_closed: Condvar::new(),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread =
            thread::Builder::new().name("delay-accept".into()).spawn(move || accept_loop(listener, accept_shared))?;
        Ok(DelayServer { addr, shared, accept_thread: Some(accept_thread) })
    }

    /// The address the server listens on (with the real port if you asked for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open.len()
    }

    /// Stops accepting, lets in-flight requests finish for up to
    /// `Config::shutdown_grace`, then cuts the rest short.
    ///
    /// Always returns within about `shutdown_grace` plus one second.
    pub fn shutdown(mut self) -> io::Result<ShutdownReport> {
        self.stop()
    }

    // ANCHOR: shutdown
    fn stop(&mut self) -> io::Result<ShutdownReport> {
        let Some(accept_thread) = self.accept_thread.take() else {
            return Ok(ShutdownReport { in_flight: 0, cut_short: 0 });
        };
        // 1. Stop accepting. `accept` blocks until a client arrives, and a flag
        //    cannot interrupt a blocked syscall, so we become that client: the
        //    loop wakes, sees the flag, and returns (closing the listener).
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_secs(1));
        accept_thread.join().map_err(|_| io::Error::other("the accept thread panicked"))?;

        // 2. Give in-flight requests the grace period to finish normally.
        let grace = self.shared.config.shutdown_grace;
        let connections = self.shared.lock();
        let in_flight = connections.open.len();
        let (mut connections, _) = self
            .shared
            .all_closed
            .wait_timeout_while(connections, grace, |c| !c.open.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let cut_short = connections.open.len();

        // 3. Cut the rest short. A handler blocked in `read` (a client that
        //    has not sent its request) or in `poll` (waiting out a delay)
        //    cannot see a flag either, so we shut down the reading half of
        //    its socket: the blocked call returns at once, the handler sees
        //    `aborting`, and answers 503 (or just closes, if it had no
        //    request yet).
        if cut_short > 0 {
            connections.aborting = true;
            for &fd in &connections.open {
                // SAFETY: `fd` is in `open`, and a connection removes its fd
                // (under this lock, which we hold) before it closes the socket,
                // so the fd is an open socket of ours. `shutdown` only changes
                // the socket's state; it never frees memory.
                unsafe { libc::shutdown(fd, libc::SHUT_RD) };
            }
            let (connections, _) = self
                .shared
                .all_closed
                .wait_timeout_while(connections, Duration::from_secs(1), |c| !c.open.is_empty())
                .unwrap_or_else(PoisonError::into_inner);
            if !connections.open.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} connection(s) still open after shutdown", connections.open.len()),
                ));
            }
        }
        Ok(ShutdownReport { in_flight, cut_short })
    }
    // ANCHOR_END: shutdown
}

impl Drop for DelayServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Where to connect to wake our own accept loop: a server bound to
/// `0.0.0.0` is reachable at `127.0.0.1`.
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    wake
}

/// Raises the listen backlog. std's `bind` already called `listen` with its
/// own small default; on Linux, calling `listen` again on a listening socket
/// just updates the backlog.
fn set_backlog(listener: &TcpListener, backlog: i32) -> io::Result<()> {
    // SAFETY: the fd belongs to `listener`, which outlives this call; `listen`
    // takes no pointers.
    syscall!(unsafe { libc::listen(listener.as_raw_fd(), backlog) })?;
    Ok(())
}

// ANCHOR: accept_loop
fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return; // dropping `listener` closes it: new connections are refused
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors: nothing to do but let some connections
            // finish. A short pause keeps this loop from spinning at 100% CPU.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            // The client gave up between the handshake and our accept, or
            // another per-connection error: it concerns that client only.
            Err(_) => continue,
        };
        let Some(connection) = Connection::open(stream, peer, &shared) else {
            continue; // over the cap: already answered 503
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        // One OS thread per connection, with a small stack: the heart of ch01.
        let spawned = thread::Builder::new()
            .name(format!("delay-conn-{id}"))
            .stack_size(shared.config.stack_size)
            .spawn(move || connection.serve(id));
        if let Err(e) = spawned {
            // The closure (and the connection in it) came back as dropped; the
            // client sees the socket close. Say why on stderr: this is the
            // "out of threads" limit that chapter 1 measures.
            eprintln!("[server] cannot start a thread for connection {id}: {e}");
        }
    }
}
// ANCHOR_END: accept_loop

/// An open client connection and its place in [`Connections::open`].
struct Connection {
    /// The client's socket.
    stream: TcpStream,
    /// The server's shared state, where the connection is registered.
    shared: Arc<Shared>,
}

impl Connection {
    /// Registers `stream` as open, or answers 503 and returns `None` when the
    /// server is at its connection cap.
    fn open(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> Option<Connection> {
        let mut connections = shared.lock();
        if connections.open.len() >= shared.config.max_connections {
            drop(connections);
            if shared.config.log_requests {
                say!("server", "503 <- {peer}: over the cap of {} connections", shared.config.max_connections);
            }
            // A short write timeout: the accept loop must never wait on a client.
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let detail = format!("the server is at its cap of {} connections", shared.config.max_connections);
            respond_and_close(&stream, &reply(503, "Service Unavailable", &detail), Duration::from_millis(100));
            return None;
        }
        connections.open.insert(stream.as_raw_fd());
        drop(connections);
        Some(Connection { stream, shared: Arc::clone(shared) })
    }

    // ANCHOR: serve
    /// Runs on the connection's own thread: read, wait, answer.
    fn serve(self, id: u64) {
        let idle = self.shared.config.idle_timeout;
        let _ = self.stream.set_write_timeout(Some(idle));
        let head = match read_head(&self.stream, idle) {
            Ok(head) => head,
            Err(HeadError::TooLarge) => {
                let detail = format!("the request head is over {MAX_HEAD_BYTES} bytes");
                let response = reply(431, "Request Header Fields Too Large", &detail);
                return self.finish(id, &format!("(a request head over {MAX_HEAD_BYTES} bytes)"), &response);
            }
            // No request to answer: say why the connection ended, and close it.
            Err(ended) => {
                let why = ended.describe(idle, self.aborting());
                return self.close_and_log(id, &format!("closed: {why}"));
            }
        };
        let request_line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
        let response = match parse_request(&head) {
            Ok(request) => match self.wait(Duration::from_millis(request.delay_ms)) {
                Waited::Delay => reply(200, "OK", &request.message),
                Waited::Aborted => reply(503, "Service Unavailable", "the server is shutting down"),
                Waited::ClientLeft { after } => {
                    let why = format!("the client closed the connection {} ms into its delay", after.as_millis());
                    return self.close_and_log(id, &format!("<- {request_line}: {why}; slot freed"));
                }
            },
            Err(rejection) => rejection,
        };
        self.finish(id, &request_line, &response);
    }
    // ANCHOR_END: serve

    // ANCHOR: wait
    /// Waits `delay` while watching the socket, so that the wait ends early
    /// when nobody is left to answer: the client closed its end (its slot is
    /// freed at once, not when the delay is over), or shutdown cut it short.
    ///
    /// `poll(2)` does both waits at once: it sleeps until the socket has
    /// something to read (bytes, or the end of the stream) or the timeout
    /// passes. `thread::sleep` would see neither.
    fn wait(&self, delay: Duration) -> Waited {
        let started = Instant::now();
        let deadline = started + delay;
        let mut ignored = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Delay;
            }
            let mut socket = libc::pollfd { fd: self.stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // Rounded up: 0.4 ms left must not become "do not wait at all".
            let timeout_ms = left.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int;
            // SAFETY: `socket` is one valid pollfd (count 1) that outlives the
            // call, for a socket this connection owns and keeps open.
            match syscall!(unsafe { libc::poll(&mut socket, 1, timeout_ms) }) {
                Ok(0) => continue, // the time is up: the loop sees it
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Waited::ClientLeft { after: started.elapsed() },
            }
            if self.aborting() {
                return Waited::Aborted;
            }
            // Readable: read to learn whether it is bytes or the end.
            match (&self.stream).read(&mut ignored) {
                Ok(0) => return Waited::ClientLeft { after: started.elapsed() },
                Ok(_) => continue, // bytes after the head (a body we do not use): dropped
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(_) => return Waited::ClientLeft { after: started.elapsed() }, // e.g. reset by the peer
            }
        }
    }
    // ANCHOR_END: wait

    /// Whether shutdown's grace period is over.
    fn aborting(&self) -> bool {
        self.shared.lock().aborting
    }

    /// Closes the connection without an answer, then logs why: after the
    /// slot is free, so a log line that says so is already true.
    fn close_and_log(self, id: u64, text: &str) {
        let shared = Arc::clone(&self.shared);
        drop(self);
        shared.log(id, text);
    }

    fn finish(self, id: u64, request_line: &str, response: &Reply) {
        self.shared.log(id, &format!("{} <- {request_line}", response.status));
        // The connection stays registered until the answer is out, so a
        // graceful shutdown really waits for it. Dropping `self` afterwards
        // unregisters it and closes the socket.
        respond_and_close(&self.stream, response, Duration::from_secs(1));
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Unregister before the socket closes (the fields drop after this
        // runs), so `shutdown` never touches a closed, maybe reused, fd.
        let mut connections = self.shared.lock();
        connections.open.remove(&self.stream.as_raw_fd());
        if connections.open.is_empty() {
            self.shared.all_closed.notify_all();
        }
    }
}

/// Writes the response and ends the connection politely (the caller then
/// drops the stream, which closes the socket).
///
/// If we closed a socket whose receive buffer still holds bytes (a request
/// we did not read to the end), Linux would send a reset (RST) instead of a
/// normal close, and the client could lose our answer. So: write, send our
/// end-of-file (`shutdown(Write)`), then read and discard until the client
/// closes too, for at most `linger`.
fn respond_and_close(mut stream: &TcpStream, response: &Reply, linger: Duration) {
    if stream.write_all(&response.bytes).is_err() || stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + linger;
    let mut sink = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break, // the client closed, or an error, or the time is up
        }
    }
}

/// How waiting out a request's delay ended.
enum Waited {
    /// The whole delay passed: answer.
    Delay,
    /// Shutdown's grace period ran out: answer 503.
    Aborted,
    /// The client closed its end (or reset the connection) this long into
    /// the delay: nobody to answer.
    ClientLeft {
        /// How long into the delay.
        after: Duration,
    },
}

/// Why there is no request head to answer.
enum HeadError {
    /// More than `MAX_HEAD_BYTES` and still no blank line.
    TooLarge,
    /// The idle limit passed first, with this many bytes received.
    Idle {
        /// Bytes of an incomplete head.
        received: usize,
    },
    /// The client closed its end first, with this many bytes sent.
    Closed {
        /// Bytes of an incomplete head.
        received: usize,
    },
    /// The socket failed (e.g. reset by the peer).
    Failed(io::Error),
}

impl HeadError {
    /// Why the connection ended, for the log. `aborting`: shutdown cut it
    /// short (which is what made the `read` end, whatever it returned).
    fn describe(&self, idle: Duration, aborting: bool) -> String {
        match self {
            _ if aborting => "shutdown cut it short before a complete request arrived".to_string(),
            HeadError::TooLarge => format!("a request head over {MAX_HEAD_BYTES} bytes"),
            HeadError::Idle { received: 0 } => format!("the client sent nothing within {idle:?}"),
            HeadError::Idle { received } => format!("no complete request within {idle:?} ({received} bytes of it)"),
            HeadError::Closed { received: 0 } => "the client closed the connection without sending anything".into(),
            HeadError::Closed { received } => {
                format!("the client closed the connection after {received} bytes, before the request was complete")
            }
            HeadError::Failed(e) => format!("reading the request failed: {e}"),
        }
    }
}

/// Reads until the blank line that ends the head, within `idle` in total (a
/// client trickling one byte every few seconds is idle too).
fn read_head(mut stream: &TcpStream, idle: Duration) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + idle;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return Err(HeadError::Idle { received: head.len() });
        };
        let _ = stream.set_read_timeout(Some(left));
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed { received: head.len() }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(HeadError::Idle { received: head.len() });
            }
            Err(e) => return Err(HeadError::Failed(e)),
        };
        // Only the new bytes (and the three before them) can complete "\r\n\r\n".
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = http::find_head_end(&head[search_from..]) {
            let end = search_from + end + 4;
            if end > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            head.truncate(end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The server the demos talk to: the instructor's if `DELAY_SERVER` is set,
/// otherwise one started in this process.
#[derive(Debug)]
pub struct DemoServer {
    /// Where to send requests.
    addr: SocketAddr,
    /// The server started in this process, if `DELAY_SERVER` was not set.
    embedded: Option<DelayServer>,
}

impl DemoServer {
    /// The environment variable that points the demos at an external server.
    pub const ENV: &'static str = "DELAY_SERVER";

    /// The address in `DELAY_SERVER=host:port`, if it is set (and not
    /// empty); an error if it is set to something that is not an address.
    pub fn external() -> io::Result<Option<SocketAddr>> {
        match std::env::var(Self::ENV) {
            Ok(value) if !value.trim().is_empty() => {
                let addr = value.trim().to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}={value:?} is not host:port (e.g. 127.0.0.1:8080)", Self::ENV),
                    )
                })?;
                Ok(Some(addr))
            }
            _ => Ok(None),
        }
    }

    /// Uses `DELAY_SERVER=host:port` if it is set, otherwise starts an
    /// embedded server with `config`.
    pub fn from_env_or_start(config: Config) -> io::Result<DemoServer> {
        match Self::external()? {
            Some(addr) => Ok(DemoServer { addr, embedded: None }),
            None => {
                let server = DelayServer::start(config)?;
                Ok(DemoServer { addr: server.addr(), embedded: Some(server) })
            }
        }
    }

    /// Where to send requests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One line for the demo's first trace line.
    pub fn describe(&self) -> String {
        match self.embedded {
            Some(_) => format!("embedded delay server listening on {}", self.addr),
            None => format!("using the delay server at {} (from {})", self.addr, Self::ENV),
        }
    }
}
