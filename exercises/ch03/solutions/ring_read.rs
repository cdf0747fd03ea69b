//! Exercise 3.4, solved: a pipe read through io_uring.

use std::io;
use std::os::fd::BorrowedFd;

use ch03_epoll::uring::{Completion, Ring, Sqe};

/// The `user_data` of the READ, so its completion can be recognised.
pub const READ: u64 = 1;

// ANCHOR: read_through_ring
/// Reads what arrives on `pipe` (at most `buffer.len()` bytes) through
/// `ring`, and returns `buffer` cut to the bytes read (empty at end of
/// file), or the error the READ's completion carries.
///
/// `ring` has nothing else in flight. `buffer` is taken by value: from the
/// moment the READ is pushed until its completion is taken, it is the
/// kernel's.
pub fn read_through_ring(ring: &mut Ring, pipe: BorrowedFd<'_>, mut buffer: Vec<u8>) -> io::Result<Vec<u8>> {
    let read = Sqe::read(pipe, buffer.as_mut_ptr(), buffer.len(), READ);
    // SAFETY: `buffer` is ours, and we neither touch it nor drop it before
    // the READ's completion has been taken below; if waiting for it fails,
    // the buffer is leaked, never freed.
    unsafe { ring.push(&read) }?;
    match wait_for(ring, READ) {
        Ok(done) => {
            // The kernel is done with the buffer: it is ours again.
            let n = done.result()? as usize;
            buffer.truncate(n);
            Ok(buffer)
        }
        Err(e) => {
            // We cannot tell whether the kernel still writes into the
            // buffer: freeing it could hand that memory to someone else
            // while it does. Leaking a few bytes is the safe choice.
            std::mem::forget(buffer);
            Err(e)
        }
    }
}

/// Submits what is queued and waits until the completion of `user_data`
/// has been taken.
fn wait_for(ring: &mut Ring, user_data: u64) -> io::Result<Completion> {
    loop {
        // One system call: submit the READ, sleep until a completion is there.
        ring.submit_and_wait(1)?;
        while let Some(done) = ring.completion()? {
            if done.user_data == user_data {
                return Ok(done);
            }
        }
    }
}
// ANCHOR_END: read_through_ring
