//! The hand-over the bench measures (`measure::ping_pong`) is built on
//! `thread::park` / `unpark`, and on Linux those are the `futex(2)` system
//! call: `park` sleeps in `FUTEX_WAIT` on a word of memory, `unpark` changes
//! the word and calls `FUTEX_WAKE` (std's `sys/sync/thread_parking/futex.rs`).
//!
//! `/proc/self/task/<tid>/syscall` names the syscall a thread is asleep in,
//! and its first argument words, so the test can see the parked thread
//! inside `futex` without guessing how long to wait.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// The syscall number and the first three arguments thread `tid` is asleep
/// in, or `None` while it runs (the file then says `running`).
fn asleep_in(tid: libc::pid_t) -> Option<(libc::c_long, [u64; 3])> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let mut words = text.split_whitespace();
    let number = words.next()?.parse().ok()?;
    let mut args = [0u64; 3];
    for arg in &mut args {
        *arg = u64::from_str_radix(words.next()?.trim_start_matches("0x"), 16).ok()?;
    }
    Some((number, args))
}

#[test]
fn a_parked_thread_sleeps_in_futex_wait_until_unparked() -> io::Result<()> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let released = Arc::new(AtomicBool::new(false));
    let parked = thread::spawn({
        let released = Arc::clone(&released);
        move || {
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            // `park` may return without an `unpark` (a spurious wake-up), so
            // it sits in a loop, as in `measure::ping_pong`.
            while !released.load(Ordering::Acquire) {
                thread::park();
            }
        }
    });
    let tid = tid_rx.recv().map_err(io::Error::other)?;

    // Wait (bounded, only to turn a failure into a message) until the
    // thread is asleep in a syscall, and look at which one.
    let give_up = Instant::now() + Duration::from_secs(20);
    let (number, [_word, op, _expected]) = loop {
        if let Some(asleep) = asleep_in(tid) {
            break asleep;
        }
        assert!(Instant::now() < give_up, "the thread never went to sleep");
        thread::yield_now();
    };
    assert_eq!(number, libc::SYS_futex, "park sleeps in futex(2)");
    let op = op as libc::c_int & !libc::FUTEX_PRIVATE_FLAG;
    assert!(op == libc::FUTEX_WAIT || op == libc::FUTEX_WAIT_BITSET, "a FUTEX_WAIT, not op {op}");

    // unpark is the other half: FUTEX_WAKE ends that sleep, and the thread ends.
    released.store(true, Ordering::Release);
    parked.thread().unpark();
    parked.join().map_err(|_| io::Error::other("the parked thread panicked"))?;
    Ok(())
}
