//! The leaf future: one HTTP GET to the delay server, on ch03's `Poll`.
//!
//! A *leaf* future stands for a resource (here a socket) and is where waiting
//! really happens; the *non-leaf* coroutines in [`crate::coroutine`] only
//! wait by awaiting leaves. [`HttpGetFuture`] goes through three states:
//!
//! ```text
//! NotStarted --first poll: start connecting, register--> Pending
//! Pending ----poll: advance the exchange; not done-----> Pending   (NotReady)
//! Pending ----poll: server closed, answer complete-----> Resolved  (Ready)
//! ```
//!
//! The socket work itself is chapter 3's: [`connect_nonblocking`] starts the
//! TCP handshake without waiting, and ch03's [`HttpGet`] state machine sends
//! the request and reads the answer a piece at a time, never blocking (and
//! parses it with ch01's parser: one HTTP parser in the whole workspace).
//! What this chapter adds is the `Future` shape around it: *the executor*
//! decides when to call it, and it tells the executor which socket to wait for.

use std::io;
use std::net::{SocketAddr, TcpStream};

use ch01_os_threads::http::{self, Response};
use ch03_epoll::client::connect_nonblocking;
use ch03_epoll::http_get::HttpGet;
use ch03_epoll::poll::{Interest, Token};

use crate::future::{Future, PollState};
use crate::log::Log;
use crate::runtime;

/// What a GET waits for: connected (writable), answer data or end of file
/// (readable, read-closed). Edge-triggered: ch03's `HttpGet` always reads
/// and writes until the socket says `WouldBlock`, so no readiness is missed.
pub fn interest() -> Interest {
    Interest::READABLE | Interest::WRITABLE | Interest::EDGE | Interest::RDHUP
}

// ANCHOR: http_get_future
/// `GET path` from the delay server at `addr`; the output is the body of a
/// `200 OK`, or the error (refused, reset, closed early, not 200).
///
/// # Panics
///
/// If polled again after it returned `Ready` (see [`crate::future`]).
#[derive(Debug)]
pub struct HttpGetFuture {
    /// Where the request is (see the module docs for the transitions).
    state: HttpGetState,
}

/// The states of an [`HttpGetFuture`].
#[derive(Debug)]
enum HttpGetState {
    /// Created, never polled: nothing has touched the network yet.
    NotStarted {
        /// The delay server.
        addr: SocketAddr,
        /// `/<delay_ms>/<message>`.
        path: String,
    },
    /// Connecting, sending or receiving; the socket is registered with the
    /// executor's event queue under `token`.
    Pending {
        /// Chapter 3's exchange: the socket and how far the GET got.
        exchange: HttpGet<TcpStream>,
        /// The socket's token in the event queue.
        token: Token,
        /// For the `[http]` lines.
        path: String,
        /// Where the `[http]` lines go.
        log: Log,
    },
    /// Finished; the output was handed out.
    Resolved,
}

impl HttpGetFuture {
    /// A GET that starts when first polled (futures are lazy: creating one
    /// does nothing).
    pub fn new(addr: SocketAddr, path: &str) -> HttpGetFuture {
        HttpGetFuture { state: HttpGetState::NotStarted { addr, path: path.to_string() } }
    }

    /// The state's name, for tests and traces.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            HttpGetState::NotStarted { .. } => "NotStarted",
            HttpGetState::Pending { .. } => "Pending",
            HttpGetState::Resolved => "Resolved",
        }
    }
}

impl Future for HttpGetFuture {
    type Output = io::Result<String>;

    fn poll(&mut self) -> PollState<io::Result<String>> {
        loop {
            // Take the state out (leaving `Resolved`) and put back the next
            // one; a path that returns `Ready` leaves `Resolved` behind.
            match std::mem::replace(&mut self.state, HttpGetState::Resolved) {
                HttpGetState::NotStarted { addr, path } => {
                    // Start the handshake, and tell the executor (through
                    // `register`) which task waits on this socket.
                    let started = connect_nonblocking(addr)
                        .map_err(|e| ch01_os_threads::client::connect_error(addr, e))
                        .and_then(|stream| {
                            let (token, log) = runtime::register(&stream, interest(), "http")?;
                            Ok((stream, token, log))
                        });
                    match started {
                        Ok((stream, token, log)) => {
                            if log.enabled() {
                                log.say(format!("GET {path}: connecting, token {}: NotStarted -> Pending", token.0));
                            }
                            let exchange = HttpGet::new(stream, addr, &path);
                            self.state = HttpGetState::Pending { exchange, token, path, log };
                            // Go round: try to make progress at once.
                        }
                        Err(e) => return PollState::Ready(Err(e)),
                    }
                }
                HttpGetState::Pending { mut exchange, token, path, log } => {
                    // Do whatever the socket allows now; never waits.
                    let Some(result) = exchange.advance().finished else {
                        self.state = HttpGetState::Pending { exchange, token, path, log };
                        return PollState::NotReady;
                    };
                    // The socket closes when `exchange` drops right after; a
                    // failed deregistration could change nothing.
                    let _ = runtime::deregister(exchange.stream(), token);
                    let body = result.and_then(Response::into_ok_body);
                    if log.enabled() {
                        let outcome = match &body {
                            Ok(body) => format!("answered {body:?}"),
                            Err(e) => format!("failed ({e})"),
                        };
                        log.say(format!("GET {path}: token {} {outcome}: Pending -> Resolved", token.0));
                    }
                    return PollState::Ready(body);
                }
                HttpGetState::Resolved => panic!("HttpGetFuture polled after it returned Ready"),
            }
        }
    }
}

impl Drop for HttpGetFuture {
    /// A GET dropped while pending (cancelled) takes its token out of the
    /// event queue, so no event is ever reported for a future that is gone.
    fn drop(&mut self) {
        if let HttpGetState::Pending { exchange, token, .. } = &self.state {
            let _ = runtime::deregister(exchange.stream(), *token);
        }
    }
}
// ANCHOR_END: http_get_future

/// Something that makes GET futures: the network ([`Http`]), or in tests a
/// script of instrumented futures that need no network.
///
/// The example coroutines are generic over it, so the same state machine
/// runs against the delay server and under a test that counts every poll.
pub trait Fetch {
    /// The GET future it makes.
    type Get: Future<Output = io::Result<String>> + Unpin;

    /// A future for `GET /<delay_ms>/<message>`.
    fn get(&self, delay_ms: u64, message: &str) -> Self::Get;
}

/// Real GETs to the delay server at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http {
    /// The delay server.
    pub addr: SocketAddr,
}

impl Fetch for Http {
    type Get = HttpGetFuture;

    fn get(&self, delay_ms: u64, message: &str) -> HttpGetFuture {
        HttpGetFuture::new(self.addr, &http::path(delay_ms, message))
    }
}
