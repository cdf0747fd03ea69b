//! Exercise 1.1, solved: every request at once, one OS thread each.

use std::io;
use std::net::SocketAddr;
use std::thread;

use ch01_os_threads::{client, http};

// ANCHOR: fetch_all
/// GETs `http::path(delay_ms, message)` for every `(delay_ms, message)` of
/// `requests` from the delay server at `addr`, all at once, and returns the
/// bodies in the order of `requests`.
pub fn fetch_all(addr: SocketAddr, requests: &[(u64, &str)]) -> io::Result<Vec<String>> {
    // Scoped threads may borrow `requests`; the scope waits for every one of
    // them before it returns, even when we leave it early with an error.
    thread::scope(|scope| {
        // First start them all: each blocks in its own `read`, and the
        // waits overlap. (Joining inside this loop would make it sequential.)
        let mut threads = Vec::with_capacity(requests.len());
        for (n, &(delay, message)) in (1..).zip(requests) {
            let thread = thread::Builder::new()
                .name(format!("request-{n}"))
                .spawn_scoped(scope, move || client::get(addr, &http::path(delay, message))?.into_ok_body())?;
            threads.push(thread);
        }
        // Then wait for them in the order of `requests`: the answers may come
        // in any order, the bodies line up with the requests.
        threads
            .into_iter()
            .map(|thread| thread.join().map_err(|_| io::Error::other("a request thread panicked"))?)
            .collect()
    })
}
// ANCHOR_END: fetch_all
