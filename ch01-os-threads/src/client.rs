//! A blocking HTTP GET client for the delay server.
//!
//! Blocking is the point of chapter 1: `get` does not return until the answer
//! is in, and the calling thread can do nothing else meanwhile. To wait for
//! several answers at once you need several threads (this chapter) or an
//! event queue (chapter 3).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::http::{self, MAX_DELAY_MS, Response};

/// How long a request may take before it fails instead of hanging.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the TCP handshake. Default 10 s: on loopback it takes microseconds,
    /// but a server whose accept queue is full drops the handshake, and the
    /// kernel retries it only after 1 s and then 2 s more.
    pub connect: Duration,
    /// For each read of the answer. Default: the server's longest delay plus 10 s.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_millis(MAX_DELAY_MS) + Duration::from_secs(10),
        }
    }
}

/// `GET path` from the delay server at `addr`, with the default [`Timeouts`].
///
/// ```no_run
/// # use ch01_os_threads::{client, http};
/// # let addr = "127.0.0.1:8080".parse().unwrap();
/// let answer = client::get(addr, &http::path(200, "hello"))?;
/// println!("{} {}", answer.status, answer.body);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    get_with(addr, path, Timeouts::default())
}

// ANCHOR: get
/// `GET path` with explicit timeouts. Errors say what went wrong and where.
pub fn get_with(addr: SocketAddr, path: &str, timeouts: Timeouts) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeouts.connect).map_err(|e| connect_error(addr, e))?;
    stream.set_read_timeout(Some(timeouts.read))?;
    stream.write_all(&http::request(addr, path)).map_err(|e| context(addr, path, e))?;

    // `Connection: close`: the server closes when it is done, so "read to the
    // end" is "read the whole answer". This is where the thread blocks.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the delay server at {addr} sent no complete answer to GET {path} within {:?}", timeouts.read),
        ),
        _ => context(addr, path, e),
    })?;
    http::parse_response(&answer).map_err(|e| context(addr, path, e))
}
// ANCHOR_END: get

/// Turns a failed connect into an error a learner can act on.
pub fn connect_error(addr: SocketAddr, e: io::Error) -> io::Error {
    let why = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "no delay server at {addr} (connection refused): start one with \
             `cargo run -p ch01-os-threads -- serve`, or unset DELAY_SERVER to use an embedded one"
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer from {addr} while connecting (timed out): is the address right?")
        }
        _ => format!("cannot connect to the delay server at {addr}: {e}"),
    };
    io::Error::new(e.kind(), why)
}

fn context(addr: SocketAddr, path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("GET {path} from {addr}: {e}"))
}
