//! `http::get`: one GET to the delay server, as an `async fn`.
//!
//! Chapter 4 wrote this GET by hand as a state machine (`HttpGetFuture`:
//! NotStarted → Pending → Resolved, with ch03's exchange inside). Here it is
//! five lines of `async fn` over the leaf futures of [`crate::net`], and the
//! compiler writes the state machine. The request bytes and the response
//! parser are chapter 1's: one HTTP format in the whole workspace.

use std::io;
use std::net::SocketAddr;

use ch01_os_threads::client::{Timeouts, connect_error};
use ch01_os_threads::http::{self, Response};

use crate::net::TcpStream;
use crate::time::timeout;

/// `GET path` from the delay server at `addr`, with chapter 1's default
/// [`Timeouts`] (so a server that never answers is an error, not a hang).
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    get_with(addr, path, Timeouts::default()).await
}

// ANCHOR: get
/// `GET path` with explicit time limits: `connect` for the handshake,
/// `read` for the whole answer.
pub async fn get_with(addr: SocketAddr, path: &str, limits: Timeouts) -> io::Result<Response> {
    let mut stream = timeout(limits.connect, TcpStream::connect(addr))
        .await
        .map_err(io::Error::from)
        .and_then(|connected| connected)
        .map_err(|e| connect_error(addr, e))?;
    stream.write_all(&http::request(addr, path)).await.map_err(|e| context(addr, path, e))?;

    // `Connection: close`: the answer is everything until the server closes.
    let mut answer = Vec::new();
    match timeout(limits.read, stream.read_to_end(&mut answer)).await {
        Ok(read) => read.map_err(|e| context(addr, path, e))?,
        Err(elapsed) => {
            let why = format!("the delay server at {addr} sent no complete answer to GET {path}: {elapsed}");
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
    };
    http::parse_response(&answer).map_err(|e| context(addr, path, e))
}
// ANCHOR_END: get

fn context(addr: SocketAddr, path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("GET {path} from {addr}: {e}"))
}
