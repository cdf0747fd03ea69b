//! The check of exercise 3.4: a READ of a pipe, through the ring.
//!
//! `read_through_ring` runs on a thread of its own, and the check writes
//! into the pipe only once that thread sleeps in `io_uring_enter`
//! (`/proc/self/task/<tid>/syscall` names the system call a thread sleeps
//! in). So the read must be the kernel's, waiting in the ring, not a
//! `read(2)` of the learner's, and what it returns must come from the
//! completion. Then a read the kernel refuses (the pipe's write end cannot
//! be read: `-EBADF` in the completion), and a read at end of file.
//!
//! Where io_uring is not available, the check skips and says why.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ch03_epoll::uring::{Ring, Unavailable};
use ch03_exercises::ring_read::read_through_ring;
use exercise_harness::{Verdict, ensure, skip};

/// What the check writes into the pipe.
const MESSAGE: &[u8] = b"hello through the ring";

/// The buffer the check hands over: longer than the message.
const BUFFER: usize = 64;

/// How long the check waits for the reading thread to get somewhere. A
/// correct solution takes microseconds; this only bounds a wrong one.
const PATIENCE: Duration = Duration::from_secs(10);

pub fn check() -> Verdict {
    let mut ring = match Ring::new(4) {
        Ok(ring) => ring,
        Err(e) => {
            return match Unavailable::from_error(&e) {
                Some(why) => skip(format!("io_uring is not available here ({why})")),
                None => Err(format!("Ring::new(4) failed: {e}")),
            };
        }
    };
    let (reader, mut writer) = io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;

    // 1. A read that completes only once the check writes.
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let reading = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let _ = tid_tx.send(unsafe { libc::gettid() });
        let result = read_through_ring(&mut ring, reader.as_fd(), vec![0u8; BUFFER]);
        let _ = done_tx.send(());
        (ring, reader, result)
    });
    let tid = tid_rx.recv().map_err(|_| "the reading thread did not start".to_string())?;
    let give_up = Instant::now() + PATIENCE;
    loop {
        match done_rx.try_recv() {
            // Returned (or panicked) before anything was written.
            Ok(()) | Err(mpsc::TryRecvError::Disconnected) => {
                let (_, _, result) = reading.join().map_err(|_| "read_through_ring panicked".to_string())?;
                return Err(format!(
                    "read_through_ring returned {result:?} before anything was written to the pipe: after \
                     submitting the READ, wait for its completion (submit_and_wait(1)), which comes only \
                     once there is data"
                ));
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match sleeping_in(tid) {
            Some(libc::SYS_io_uring_enter) => break, // waiting for the completion: as it should
            Some(libc::SYS_read) => {
                let _ = writer.write_all(MESSAGE); // lets the stuck read finish
                return Err("read_through_ring called read(2) on the pipe itself: hand the read to the kernel \
                            instead, as an SQE (Sqe::read) pushed into the ring, and wait for its completion"
                    .to_string());
            }
            _ if Instant::now() > give_up => {
                let _ = writer.write_all(MESSAGE);
                return Err(format!(
                    "after {} s, read_through_ring neither returned nor slept in io_uring_enter: if it asks \
                     ring.completion() in a loop, it spins; submit_and_wait(1) sleeps until the completion is \
                     there",
                    PATIENCE.as_secs()
                ));
            }
            _ => thread::yield_now(),
        }
    }
    writer.write_all(MESSAGE).map_err(|e| format!("cannot write into the pipe: {e}"))?;
    match done_rx.recv_timeout(PATIENCE) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
        Err(RecvTimeoutError::Timeout) => {
            return Err(format!(
                "the data was written, and read_through_ring did not return within {} s: wait for one \
                 completion (the READ's), not more",
                PATIENCE.as_secs()
            ));
        }
    }
    let (mut ring, reader, result) = reading.join().map_err(|_| "read_through_ring panicked".to_string())?;
    let bytes = result.map_err(|e| format!("read_through_ring failed: {e}"))?;
    ensure!(
        bytes.len() != BUFFER,
        "read_through_ring returned all {BUFFER} bytes of the buffer, but only {} arrived: cut the buffer to the \
         number the completion reports (its `res`)",
        MESSAGE.len()
    );
    ensure!(
        bytes == MESSAGE,
        "the pipe carried {:?}; read_through_ring returned {:?}",
        String::from_utf8_lossy(MESSAGE),
        String::from_utf8_lossy(&bytes)
    );
    ensure!(
        ring.in_flight() == 0,
        "the READ's completion is still in the ring: take it with ring.completion() (that is where the result is)"
    );

    // 2. The kernel refuses the read: the error is in the completion.
    let refused = read_through_ring(&mut ring, writer.as_fd(), vec![0u8; 8]);
    ensure!(
        refused.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EBADF)),
        "reading the pipe's write end completes with res = -EBADF, so read_through_ring must return that \
         error; it returned {refused:?}. A negative res is -errno (Completion::result turns it into an Err)"
    );

    // 3. End of file: the writer is gone, the read completes with 0.
    drop(writer);
    let end = read_through_ring(&mut ring, reader.as_fd(), vec![0u8; 8]);
    ensure!(
        end.as_ref().is_ok_and(Vec::is_empty),
        "at end of file the READ completes with 0 bytes, so read_through_ring must return an empty buffer; it \
         returned {end:?}"
    );
    Ok(())
}

/// The number of the system call thread `tid` of this process sleeps in
/// now, if it sleeps in one.
fn sleeping_in(tid: libc::pid_t) -> Option<libc::c_long> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}
