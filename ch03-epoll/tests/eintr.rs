//! A signal delivered while a thread sleeps in `epoll_wait` makes the syscall
//! fail with `EINTR` ("interrupted"). `Poll::poll` must treat that as "wait
//! again", not hand the caller an error.
//!
//! Made deterministic without sleeps: the test reads
//! `/proc/self/task/<tid>/syscall`, which names the syscall a thread is
//! blocked in, and only signals the polling thread once it is *inside*
//! `epoll_wait`; then it waits until the handler ran and the thread is back
//! inside `epoll_wait` (the retry), three times over. Only then does it write
//! the byte that lets the poll return.
//!
//! In its own test binary because a signal handler belongs to the whole process.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ch03_epoll::poll::{Events, Interest, Poll, Token};

mod common;
use common::{SIGNALS_HANDLED, blocked_in_epoll_wait, install_signal_counter, wait_until};

#[test]
fn a_signal_during_epoll_wait_is_not_an_error() -> io::Result<()> {
    install_signal_counter()?;
    let (mut writer, reader) = UnixStream::pair()?;
    let mut poll = Poll::new()?;
    poll.registry().register(&reader, Token(1), Interest::READABLE)?;

    let (ids_tx, ids_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let poller = thread::spawn(move || {
        // SAFETY: pthread_self and gettid have no preconditions.
        let ids = unsafe { (libc::pthread_self(), libc::gettid()) };
        ids_tx.send(ids).unwrap();
        let mut events = Events::with_capacity(4);
        let result = poll.poll(&mut events, Some(Duration::from_secs(60)));
        result_tx.send(result.map(|()| events.iter().map(|e| e.token()).collect::<Vec<_>>())).unwrap();
        // Stay alive until the main thread is done signalling us, so that
        // `pthread_kill` never targets a thread that has exited.
        let _ = release_rx.recv();
    });
    let (pthread, tid) = ids_rx.recv().unwrap();

    // The poll may only return once we write; if it returns earlier (say,
    // with the EINTR as an error), fail at once with what it returned.
    let in_epoll_wait = || {
        if let Ok(early) = result_rx.try_recv() {
            panic!("poll returned before any data was written: {early:?}");
        }
        blocked_in_epoll_wait(tid)
    };
    for round in 1..=3 {
        wait_until(&format!("the poller is in epoll_wait (round {round})"), in_epoll_wait);
        let before = SIGNALS_HANDLED.load(Ordering::SeqCst);
        // SAFETY: `pthread` is a live thread: it cannot exit before we send
        // on `release_tx` below.
        let sent = unsafe { libc::pthread_kill(pthread, libc::SIGUSR1) };
        assert_eq!(sent, 0, "pthread_kill failed");
        wait_until("the handler ran", || SIGNALS_HANDLED.load(Ordering::SeqCst) > before);
    }
    // Back inside epoll_wait after the third interruption: it retried.
    wait_until("the poller went back to epoll_wait", in_epoll_wait);

    writer.write_all(b"x")?;
    let tokens = result_rx.recv().unwrap().expect("EINTR must not surface as an error");
    assert_eq!(tokens, [Token(1)]);
    release_tx.send(()).unwrap();
    poller.join().unwrap();
    Ok(())
}
