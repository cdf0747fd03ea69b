//! A signal delivered while a thread sleeps in `io_uring_enter` (waiting
//! for completions) makes the call fail with `EINTR`. `Ring::submit_and_wait`
//! must wait again, not hand the caller an error, and must not lose the
//! operation it is waiting for.
//!
//! Deterministic as `tests/eintr.rs` is for `epoll_wait`: the test signals
//! the waiting thread only once `/proc/self/task/<tid>/syscall` shows it
//! inside `io_uring_enter`, waits until the handler ran and the thread is
//! back inside `io_uring_enter` (the retry), three times over, and only then
//! writes the bytes that complete the READ.
//!
//! In its own test binary because a signal handler belongs to the whole process.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;

use ch03_epoll::counting::{self, Syscall};
use ch03_epoll::uring::{Completion, Ring, Sqe};

mod common;
use common::{SIGNALS_HANDLED, blocked_in_io_uring_enter, install_signal_counter, ring_or_skip, wait_until};

/// What the waiting thread reports: the completion, the bytes read, and
/// how many `io_uring_enter` calls its wait took.
type Outcome = io::Result<(Option<Completion>, Vec<u8>, u64)>;

#[test]
fn a_signal_during_io_uring_enter_is_not_an_error() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("EINTR in io_uring_enter", || Ring::new(4))? else { return Ok(()) };
    install_signal_counter()?;
    let (reader, mut writer) = io::pipe()?;

    let (ids_tx, ids_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel::<Outcome>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let waiter = thread::spawn(move || {
        // SAFETY: pthread_self and gettid have no preconditions.
        let ids = unsafe { (libc::pthread_self(), libc::gettid()) };
        ids_tx.send(ids).unwrap();
        let outcome = (|| -> Outcome {
            let mut buf = vec![0u8; 16];
            // SAFETY: `buf` is neither touched nor dropped before the READ's
            // completion is taken (or, on an error, before the ring is
            // dropped, which waits for it).
            unsafe { ring.push(&Sqe::read(reader.as_fd(), buf.as_mut_ptr(), buf.len(), 1)) }?;
            ring.submit()?; // submitted: only the wait below can be interrupted
            let before = counting::snapshot();
            ring.submit_and_wait(1)?;
            let enters = (counting::snapshot() - before).of(Syscall::IoUringEnter);
            let completion = ring.completion()?;
            Ok((completion, buf, enters))
        })();
        result_tx.send(outcome).unwrap();
        // Stay alive until the main thread is done signalling us, so that
        // `pthread_kill` never targets a thread that has exited.
        let _ = release_rx.recv();
    });
    let (pthread, tid) = ids_rx.recv().unwrap();

    // The wait may only end once we write; if it ends earlier (say, with
    // the EINTR as an error), fail at once with what it returned.
    let in_io_uring_enter = || {
        if let Ok(early) = result_rx.try_recv() {
            panic!("submit_and_wait returned before any data was written: {:?}", early.map(|(c, _, n)| (c, n)));
        }
        blocked_in_io_uring_enter(tid)
    };
    for round in 1..=3 {
        wait_until(&format!("the waiter is in io_uring_enter (round {round})"), in_io_uring_enter);
        let before = SIGNALS_HANDLED.load(Ordering::SeqCst);
        // SAFETY: `pthread` is a live thread: it cannot exit before we send
        // on `release_tx` below.
        let sent = unsafe { libc::pthread_kill(pthread, libc::SIGUSR1) };
        assert_eq!(sent, 0, "pthread_kill failed");
        wait_until("the handler ran", || SIGNALS_HANDLED.load(Ordering::SeqCst) > before);
    }
    // Back inside io_uring_enter after the third interruption: it retried.
    wait_until("the waiter went back to io_uring_enter", in_io_uring_enter);

    writer.write_all(b"done")?;
    let (completion, buf, enters) = result_rx.recv().unwrap().expect("EINTR must not surface as an error");
    assert_eq!(completion, Some(Completion { user_data: 1, res: 4, flags: 0 }));
    assert_eq!(&buf[..4], b"done");
    assert!(enters >= 4, "three interrupted io_uring_enter calls and the one that got the completion: {enters}");
    release_tx.send(()).unwrap();
    waiter.join().unwrap();
    Ok(())
}
