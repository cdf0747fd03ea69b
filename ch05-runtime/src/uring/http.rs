//! `get` on the completion driver: the same GET as [`crate::http::get`],
//! the same time limits and the same answers, over [`super::net`] and
//! [`super::time`].
//!
//! The shape differs in one way: each `.await` hands a buffer over and gets
//! it back. `write_all` takes the request's bytes and `read_to_end` an
//! empty `Vec`, because the kernel reads and writes them while this
//! `async fn` is suspended.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ch01_os_threads::client::{Timeouts, connect_error};
use ch01_os_threads::http::{self, Response};

use super::net::{READ_CHUNK, TcpStream};
use super::time::timeout;
use crate::{Runtime, spawn};

/// `GET path` from the delay server at `addr`, with chapter 1's default
/// [`Timeouts`], on the completion driver.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    get_with(addr, path, Timeouts::default()).await
}

// ANCHOR: get
/// `GET path` with explicit time limits: `connect` for the handshake,
/// `read` for the whole answer.
pub async fn get_with(addr: SocketAddr, path: &str, limits: Timeouts) -> io::Result<Response> {
    let what = format!("GET {path}");
    exchange(addr, http::request(addr, path), &what, limits).await
}

/// Connects, sends `request`, reads until the server closes, parses.
async fn exchange(addr: SocketAddr, request: Vec<u8>, what: &str, limits: Timeouts) -> io::Result<Response> {
    let stream = timeout(limits.connect, TcpStream::connect(addr))
        .await
        .and_then(|connected| connected)
        .map_err(|e| connect_error(addr, e))?;
    let (sent, _) = stream.write_all(request).await; // the bytes come back; dropped at once
    sent.map_err(|e| context(addr, what, e))?;

    // `Connection: close`: the answer is everything until the server closes.
    let answer = match timeout(limits.read, stream.read_to_end(Vec::with_capacity(READ_CHUNK))).await {
        Ok((read, answer)) => read.map(|_| answer).map_err(|e| context(addr, what, e))?,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            let why = format!("the delay server at {addr} sent no complete answer to {what}: {e}");
            return Err(io::Error::new(io::ErrorKind::TimedOut, why));
        }
        Err(e) => return Err(context(addr, what, e)),
    };
    http::parse_response(&answer).map_err(|e| context(addr, what, e))
}
// ANCHOR_END: get

/// Sends `request` exactly as given (any method, any bytes) and reads the
/// answer, with the default [`Timeouts`]: for trying the server's answers to
/// bad input.
pub async fn send_raw(addr: SocketAddr, request: Vec<u8>) -> io::Result<Response> {
    exchange(addr, request, "the request", Timeouts::default()).await
}

// ANCHOR: get_many
/// `n` GETs of `path` at once, one task each on `runtime`, each on the
/// completion driver: the results in spawn order. For benches (chapter 5's
/// and the showdown's): the io_uring counterpart of spawning `n` tasks
/// that run [`crate::http::get`].
///
/// # Panics
///
/// Inside a runtime (it calls [`Runtime::block_on`]).
pub fn get_many(runtime: &Runtime, addr: SocketAddr, path: &str, n: usize) -> Vec<io::Result<Response>> {
    let path: Arc<str> = Arc::from(path);
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let path = Arc::clone(&path);
                spawn(async move { get(addr, &path).await })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| Err(io::Error::other(e.to_string()))));
        }
        results
    })
}
// ANCHOR_END: get_many

fn context(addr: SocketAddr, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} from {addr}: {e}"))
}
