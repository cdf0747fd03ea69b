//! Exercise 3.4: a pipe read through io_uring.
//!
//! With epoll you wait until the pipe *is* readable, then call `read`
//! yourself. With io_uring you hand the kernel the read itself, buffer and
//! all, and it tells you when the read is *done*. Write that: push one READ
//! (`Sqe::read`), submit it and wait for its completion
//! (`Ring::submit_and_wait`), take it (`Ring::completion`), and turn its
//! result into what the function returns (`Completion::result`).
//!
//! Check it: `cargo run -p ch03-exercises -- 4`

// Starter code: the `todo!()` leaves some names unused. Delete this line
// when your code uses them.
#![allow(unused_imports, unused_variables, unused_mut)]

use std::io;
use std::os::fd::BorrowedFd;

use ch03_epoll::uring::{Completion, Ring, Sqe};

/// The `user_data` of the READ, so its completion can be recognised.
pub const READ: u64 = 1;

/// Reads what arrives on `pipe` (at most `buffer.len()` bytes) through
/// `ring`, and returns `buffer` cut to the bytes read (empty at end of
/// file), or the error the READ's completion carries.
///
/// `ring` has nothing else in flight. `buffer` is taken by value: from the
/// moment the READ is pushed until its completion is taken, it is the
/// kernel's, which writes into it whenever the data arrives. It must not
/// be touched or dropped until then. If waiting fails and you cannot tell
/// whether the kernel is done with it, leak it (`std::mem::forget`): never
/// free it.
pub fn read_through_ring(ring: &mut Ring, pipe: BorrowedFd<'_>, mut buffer: Vec<u8>) -> io::Result<Vec<u8>> {
    todo!("push a READ into `buffer`, submit it and wait, take its completion")
}
