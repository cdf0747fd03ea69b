//! The delay server again, as an async server: one task per connection, all
//! on one thread.
//!
//! It speaks chapter 1's protocol and gives the same answer to every input,
//! because it checks requests with the same function
//! ([`ch01_os_threads::http::parse_request`]) and writes the same replies:
//! `200` after the delay, `400` for a malformed request or delay, `405` for
//! another method, `431` for a head over 8 KiB, `503` over the connection
//! cap, and silence for a client that sends no complete request within the
//! idle limit.
//!
//! What changes is the cost of a waiting client. Chapter 1 gives each one an
//! OS thread (a stack, a kernel task); here a connection is a task of a few
//! hundred bytes, its socket waits in the reactor and its delay in the timer
//! table, so one thread holds ten thousand of them. Two more things a
//! production server needs, and one task per connection makes easy:
//!
//! - the accept loop takes every queued connection before it waits again
//!   (`accept` only returns `Pending` once the kernel's queue is empty).
//!   That makes an overflow of the listen queue in a burst of handshakes
//!   less likely; it cannot prevent one: the kernel queues at most
//!   `backlog` finished handshakes (capped by `net.core.somaxconn`), and
//!   while the executor runs other tasks nobody accepts;
//! - a client that leaves during its delay frees its slot at once: the task
//!   waits for the delay *and* for the peer's end of file, whichever comes
//!   first.
//!
//! And one thing a server on one thread must never forget: no client may
//! keep that thread. Every loop that reads what a client sends is bounded,
//! by the bytes it may take ([`Config::max_extra_bytes`] after a complete
//! request) and by the task's cooperative budget ([`crate::coop`]), so a
//! client that floods its connection is cut off and the others are
//! answered on time.

use std::future::{Future, poll_fn};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use ch01_os_threads::http::{self, MAX_HEAD_BYTES, Reply, parse_request, reply};
use ch01_os_threads::say;

use crate::channel::{self, Receiver, Sender};
use crate::net::{TcpListener, TcpStream};
use crate::runtime::{Runtime, spawn};
use crate::time::{sleep, timeout};

/// How the async server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:0` (loopback, a free port).
    pub addr: SocketAddr,
    /// The most connections served at once; more get `503`. Default 16 384:
    /// a waiting connection costs a task and a socket, not a thread.
    pub max_connections: usize,
    /// How long a client may take to send its whole request. Default 10 s.
    pub idle_timeout: Duration,
    /// How long shutdown waits for requests in flight. Default 5 s.
    pub shutdown_grace: Duration,
    /// The listen backlog (capped by `net.core.somaxconn`). Default 4 096.
    pub backlog: i32,
    /// Bytes a client may send after its complete request (during its delay,
    /// or while we close) before we close the connection: it is not waiting
    /// for an answer, it is flooding us. Default 8 KiB, as much as a request
    /// head may be.
    pub max_extra_bytes: usize,
    /// Print a `[server #N]` line per connection.
    pub log_requests: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: 16_384,
            idle_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            backlog: 4096,
            max_extra_bytes: MAX_HEAD_BYTES,
            log_requests: false,
        }
    }
}

/// An async delay server running on its own thread, with its own
/// single-threaded runtime. Dropping it shuts it down.
#[derive(Debug)]
pub struct AsyncDelayServer {
    /// Where it listens.
    addr: SocketAddr,
    /// Tells the accept loop to stop (a message, or being dropped).
    stop: Option<Sender<()>>,
    /// How many connections are open (the accept loop's count).
    open: Arc<AtomicUsize>,
    /// The server's thread.
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl AsyncDelayServer {
    /// Binds the listener (errors come back here) and starts the server's
    /// thread.
    pub fn start(config: Config) -> io::Result<AsyncDelayServer> {
        let listener = TcpListener::bind_with_backlog(config.addr, config.backlog)?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::new()?;
        let (stop, stopped) = channel::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&open);
        let thread = thread::Builder::new()
            .name("async-delay-server".into())
            .spawn(move || runtime.block_on(accept_loop(listener, config, stopped, counted)))?;
        Ok(AsyncDelayServer { addr, stop: Some(stop), open, thread: Some(thread) })
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (for up to
    /// `Config::shutdown_grace`), then stops the rest with the runtime.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        drop(self.stop.take()); // the accept loop sees the channel close
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| io::Error::other("the async delay server's thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for AsyncDelayServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Serves on `listener` until `stop` gets a message or all its senders are
/// dropped; then waits (at most `config.shutdown_grace`) for the requests in
/// flight. Run it with `block_on` or `spawn`.
pub async fn serve(listener: TcpListener, config: Config, stop: Receiver<()>) -> io::Result<()> {
    accept_loop(listener, config, stop, Arc::new(AtomicUsize::new(0))).await
}

// ANCHOR: serve
/// The accept loop: one task per connection, until `stop` closes; then a
/// bounded wait for the connections in flight. `open` counts connections.
async fn accept_loop(
    mut listener: TcpListener,
    config: Config,
    mut stop: Receiver<()>,
    open: Arc<AtomicUsize>,
) -> io::Result<()> {
    let config = Arc::new(config);
    // Every connection task holds a clone of `in_flight`; when the last one
    // is gone, `all_done.recv()` returns `None`.
    let (in_flight, mut all_done) = channel::channel::<()>();
    let mut next_id = 1u64;
    loop {
        // Accept, or stop: whichever is ready first.
        let next = poll_fn(|cx| match stop.poll_recv(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => listener.poll_accept(cx).map(Some),
        })
        .await;
        let (stream, _peer) = match next {
            None => break,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // Out of file descriptors: let some connections finish.
                eprintln!("[server] accept: {e}; waiting 10 ms for connections to close");
                sleep(Duration::from_millis(10)).await;
                continue;
            }
            Some(Err(_)) => continue, // that client gave up before we accepted it
        };
        let id = next_id;
        next_id += 1;
        if open.load(Ordering::Relaxed) >= config.max_connections {
            spawn(refuse(stream, id, Arc::clone(&config)));
            continue;
        }
        // Counted here, not when the task first runs: a burst of accepts
        // happens before any connection task gets its first poll.
        let slot = Slot::take(&open, &in_flight);
        spawn(connection(stream, id, Arc::clone(&config), slot));
    }
    drop(listener); // new connections are refused from here on
    drop(in_flight);
    let _ = timeout(config.shutdown_grace, async { while all_done.recv().await.is_some() {} }).await;
    Ok(())
}
// ANCHOR_END: serve

/// A connection's place under the cap; given back when the task ends.
struct Slot {
    /// The count of open connections.
    open: Arc<AtomicUsize>,
    /// Keeps the accept loop's "all done" channel open while we run.
    _in_flight: Sender<()>,
}

impl Slot {
    fn take(open: &Arc<AtomicUsize>, in_flight: &Sender<()>) -> Slot {
        open.fetch_add(1, Ordering::Relaxed);
        Slot { open: Arc::clone(open), _in_flight: in_flight.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

// ANCHOR: connection
/// One connection: read the head (within the idle limit), wait the delay
/// (unless the client leaves first), answer, close politely.
async fn connection(mut stream: TcpStream, id: u64, config: Arc<Config>, _slot: Slot) {
    let log = |text: &str| {
        if config.log_requests {
            say!(format!("server #{id}"), "{text}");
        }
    };
    let head = match timeout(config.idle_timeout, read_head(&mut stream)).await {
        Err(elapsed) => return log(&format!("closed: no complete request ({elapsed})")),
        Ok(Head::Gone(why)) => return log(&format!("closed: {why}")),
        Ok(Head::TooLarge) => None,
        Ok(Head::Complete(head)) => Some(head),
    };
    let (request_line, answer) = match &head {
        None => ("(a request head over 8 KiB)".to_string(), too_large()),
        Some(head) => {
            let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
            let answer = match parse_request(head) {
                Ok(request) => {
                    let delay = Duration::from_millis(request.delay_ms);
                    match delay_unless_gone(&mut stream, delay, config.max_extra_bytes).await {
                        Delay::Over => reply(200, "OK", &request.message),
                        Delay::Left => {
                            return log(&format!("closed: the client left during its {} ms delay", request.delay_ms));
                        }
                        Delay::Flooded(bytes) => return log(&flooded(bytes, "during its delay", &config)),
                    }
                }
                Err(rejection) => rejection,
            };
            (line, answer)
        }
    };
    log(&format!("{} <- {request_line}", answer.status));
    if let Closed::Flooded(bytes) =
        respond_and_close(&mut stream, &answer, Duration::from_secs(1), config.max_extra_bytes).await
    {
        log(&flooded(bytes, "after its answer", &config));
    }
}

/// The log line for a client cut off for sending too much.
fn flooded(bytes: usize, when: &str, config: &Config) -> String {
    format!(
        "closed: it sent {bytes} bytes {when}, over the {} allowed after a request: \
         a client that keeps sending is not waiting for an answer",
        config.max_extra_bytes
    )
}
// ANCHOR_END: connection

/// Over the cap: answer 503 and close, in a task of its own so the accept
/// loop never waits on this client.
async fn refuse(mut stream: TcpStream, id: u64, config: Arc<Config>) {
    let cap = config.max_connections;
    if config.log_requests {
        say!(format!("server #{id}"), "503: refused, the server is at its cap of {cap} connections");
    }
    let detail = format!("the server is at its cap of {cap} connections");
    let answer = reply(503, "Service Unavailable", &detail);
    respond_and_close(&mut stream, &answer, Duration::from_millis(100), config.max_extra_bytes).await;
}

fn too_large() -> Reply {
    reply(431, "Request Header Fields Too Large", &format!("the request head is over {MAX_HEAD_BYTES} bytes"))
}

/// What reading a request head produced.
enum Head {
    /// The bytes up to and including the blank line.
    Complete(Vec<u8>),
    /// More than `MAX_HEAD_BYTES` and still no blank line.
    TooLarge,
    /// The client closed or the socket failed before a complete head: why.
    Gone(String),
}

/// Reads until the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> Head {
    let mut head = Vec::new();
    loop {
        let filled = head.len();
        match stream.read_append(&mut head).await {
            Ok(0) => return Head::Gone(format!("end of file after {filled} byte(s), before a complete request")),
            Ok(_) => {}
            Err(e) => return Head::Gone(format!("read failed: {e}")),
        }
        // Only the new bytes (and the three before them) can complete "\r\n\r\n".
        let search_from = filled.saturating_sub(3);
        if let Some(end) = http::find_head_end(&head[search_from..]) {
            let end = search_from + end + 4;
            if end > MAX_HEAD_BYTES {
                return Head::TooLarge;
            }
            head.truncate(end);
            return Head::Complete(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Head::TooLarge;
        }
    }
}

// ANCHOR: delay_unless_gone
/// How a request's delay ended.
enum Delay {
    /// The delay is over: answer.
    Over,
    /// The client closed its end (or the socket failed) first.
    Left,
    /// The client sent more than the allowed bytes meanwhile (how many).
    Flooded(usize),
}

/// Waits `delay`, unless the client closes its end first, or keeps sending
/// (over `max_extra` bytes).
///
/// The two waits are one future: each poll looks at the socket (an end of
/// file or an error means the client left; stray bytes are counted and
/// dropped) and at the timer. Whichever the reactor reports first decides.
/// The read loop ends at `WouldBlock`, at `max_extra` bytes, or when the
/// task's budget is spent (`poll_read` then returns `Pending` and wakes the
/// task): a flooding client can neither keep the thread nor stay forever.
async fn delay_unless_gone(stream: &mut TcpStream, delay: Duration, max_extra: usize) -> Delay {
    let mut timer = sleep(delay);
    let mut scratch = [0u8; 64]; // small: it is part of the task's state while it waits
    let mut extra = 0;
    poll_fn(|cx| {
        while extra <= max_extra {
            match stream.poll_read(cx, &mut scratch) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Delay::Left),
                Poll::Ready(Ok(n)) => extra += n, // bytes after the head: not ours to answer
                Poll::Pending => break,
            }
        }
        if extra > max_extra {
            return Poll::Ready(Delay::Flooded(extra));
        }
        Pin::new(&mut timer).poll(cx).map(|()| Delay::Over)
    })
    .await
}
// ANCHOR_END: delay_unless_gone

/// How the end of a connection went.
enum Closed {
    /// The client closed its end too, or the linger time ran out.
    Politely,
    /// The client kept sending (this many bytes) after our answer: we
    /// closed without waiting longer.
    Flooded(usize),
}

/// Writes the answer and ends the connection politely: our end of file
/// first, then read (and discard) until the client closes too, for at most
/// `linger` and `max_extra` bytes. Closing a socket with unread bytes in it
/// would send a reset, and the client could lose the answer (chapter 1
/// explains); a client that keeps sending past `max_extra` is not reading
/// its answer anyway.
async fn respond_and_close(stream: &mut TcpStream, answer: &Reply, linger: Duration, max_extra: usize) -> Closed {
    if stream.write_all(&answer.bytes).await.is_err() || stream.shutdown(Shutdown::Write).is_err() {
        return Closed::Politely;
    }
    let mut sink = [0u8; 4096];
    let mut extra = 0;
    let _ = timeout(linger, async {
        // Each `read` spends budget, so even a client that always has bytes
        // for us lets the others run, and `timeout` still sees its deadline.
        while extra <= max_extra {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => extra += n,
            }
        }
    })
    .await;
    if extra > max_extra { Closed::Flooded(extra) } else { Closed::Politely }
}
