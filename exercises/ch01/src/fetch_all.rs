//! Exercise 1.1: every request at once, one OS thread each.
//!
//! Chapter 1's demo sends its requests one after another (the waits add up)
//! and then one thread per request (the waits overlap). Write the second as a
//! function: start one thread per request, so that all of them wait for the
//! delay server *at the same time*, then collect the bodies in the order of
//! `requests`, whichever answer comes first.
//!
//! Check it: `cargo run -p ch01-exercises -- 1`

// Starter code: `todo!()` leaves the arguments and imports unused. Delete
// this line when your code uses them.
#![allow(unused_variables, unused_imports)]

use std::io;
use std::net::SocketAddr;
use std::thread;

use ch01_os_threads::{client, http};

/// GETs `http::path(delay_ms, message)` for every `(delay_ms, message)` of
/// `requests` from the delay server at `addr`, all at once, and returns the
/// bodies in the order of `requests`.
///
/// An answer other than `200 OK` is an error (chapter 1's
/// `Response::into_ok_body` says so), and so is a thread that could not be
/// started: return the first error, in the order of `requests`.
pub fn fetch_all(addr: SocketAddr, requests: &[(u64, &str)]) -> io::Result<Vec<String>> {
    todo!("start one thread per request, then collect the bodies in order")
}
