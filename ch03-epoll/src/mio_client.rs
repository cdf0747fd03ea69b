//! The same client as [`client`](crate::client), on the real mio crate.
//!
//! Put the two side by side: the loop is the same shape, line for line,
//! because our `poll` module copied mio's API. What mio adds is what a
//! teaching module leaves out:
//!
//! - **portability**: the same code runs on epoll (Linux), kqueue (macOS,
//!   BSD) and IOCP (Windows, where readiness has to be emulated on top of a
//!   completion-based API);
//! - **its own non-blocking sockets** (`mio::net::TcpStream::connect` starts a
//!   connect without waiting, which std cannot do; we had to call `libc`);
//! - **a `Waker`** to interrupt `poll` from another thread, and years of
//!   fixes for platform corner cases.
//!
//! It also decides some things for us: mio's registrations are always
//! edge-triggered, and its `Event` shows portable words (`is_readable`,
//! `is_read_closed`) instead of epoll's bits.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ch01_os_threads::client::connect_error;
use ch01_os_threads::http::Response;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::http_get::{self, HttpGet, Step, StepOutcome};

/// What every socket is registered for: readable and writable (mio is
/// always edge-triggered, and always reports the peer closing).
pub const INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

// ANCHOR: get_all
/// `GET` every path from the server at `addr`, all at once, on this thread,
/// with mio. Same contract as [`client::get_all`](crate::client::get_all).
pub fn get_all(
    addr: SocketAddr,
    paths: &[String],
    timeout: Duration,
    mut observe: impl FnMut(&Step),
) -> io::Result<Vec<io::Result<Response>>> {
    let deadline = Instant::now().checked_add(timeout).ok_or_else(|| http_get::too_long(timeout))?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut requests: Vec<Option<HttpGet<TcpStream>>> = Vec::with_capacity(paths.len());
    let mut results: Vec<Option<io::Result<Response>>> = Vec::with_capacity(paths.len());
    let mut unfinished = 0;

    for (i, path) in paths.iter().enumerate() {
        // mio starts the connect without waiting, and is edge-triggered.
        let started = TcpStream::connect(addr).map_err(|e| connect_error(addr, e)).and_then(|mut stream| {
            poll.registry().register(&mut stream, Token(i), INTEREST)?;
            Ok(stream)
        });
        match started {
            Ok(stream) => {
                requests.push(Some(HttpGet::new(stream, addr, path)));
                results.push(None);
                unfinished += 1;
            }
            Err(e) => {
                requests.push(None);
                results.push(Some(Err(e)));
            }
        }
    }

    while unfinished > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        poll.poll(&mut events, Some(deadline - now))?;
        for event in events.iter() {
            let Token(i) = event.token();
            let words = describe(event);
            let Some(request) = requests.get_mut(i).and_then(Option::as_mut) else {
                observe(&Step { token: i, event: words, wrote: 0, read: 0, outcome: StepOutcome::Stale });
                continue;
            };
            let mut progress = request.advance();
            observe(&Step::new(i, words, &progress));
            if let Some(result) = progress.finished.take() {
                poll.registry().deregister(request.stream_mut())?;
                requests[i] = None;
                results[i] = Some(result);
                unfinished -= 1;
            }
        }
    }

    Ok(results
        .into_iter()
        .zip(paths)
        .map(|(result, path)| result.unwrap_or_else(|| Err(http_get::timed_out(addr, path, timeout))))
        .collect())
}
// ANCHOR_END: get_all

/// mio's portable description of an event, e.g. `readable|read_closed`.
fn describe(event: &mio::event::Event) -> String {
    let words = [
        (event.is_readable(), "readable"),
        (event.is_writable(), "writable"),
        (event.is_read_closed(), "read_closed"),
        (event.is_write_closed(), "write_closed"),
        (event.is_error(), "error"),
    ];
    let set: Vec<&str> = words.iter().filter(|(on, _)| *on).map(|(_, word)| *word).collect();
    if set.is_empty() { "none".to_string() } else { set.join("|") }
}
