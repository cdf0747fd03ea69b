//! The preemption timer's signal handler and timers come and go with the
//! runtimes that use them: while one preempts, `SIGURG` is ours, and a
//! `SIGURG` that is not one of our ticks reaches the handler that was there
//! before; when the last one ends, that handler is back and no timer of
//! ours is left to signal a thread.
//!
//! One `#[test]`: a signal handler belongs to the whole process, so no
//! other test may change it meanwhile.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ch02_green_threads::{Config, Preempt, run};

/// `SIGURG`s the program's own handler received.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// The program's own `SIGURG` handler (a program that uses SIGURG for
/// out-of-band socket data would have one).
extern "C" fn programs_own(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    RECEIVED.fetch_add(1, Ordering::Relaxed);
}

/// The address of the handler `SIGURG` has now.
fn current_handler() -> usize {
    // SAFETY: an all-zero sigaction is a valid place for the kernel to
    // write the current one; a null new action only reads.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGURG, std::ptr::null(), &mut action), 0);
        action.sa_sigaction
    }
}

/// How many POSIX timers of this process signal thread `tid`, from
/// `/proc/self/timers` (lines `notify: signal/tid.<tid>`); `None` when the
/// kernel does not have the file.
fn timers_for(tid: libc::pid_t) -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/timers").ok()?;
    Some(text.lines().filter(|line| line.starts_with("notify:") && line.ends_with(&format!("/tid.{tid}"))).count())
}

fn tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Sends SIGURG to the calling thread; it is handled before this returns.
fn sigurg_to_myself() {
    // SAFETY: signalling our own thread; the handler is installed.
    assert_eq!(unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGURG) }, 0);
}

#[test]
fn the_handler_is_ours_only_while_a_runtime_preempts_and_passes_on_what_is_not_ours() -> io::Result<()> {
    // SAFETY: installing a handler that only increments an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = programs_own as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGURG, &action, std::ptr::null_mut()), 0);
    }
    let own = programs_own as *const () as usize;
    assert_eq!(current_handler(), own);
    let quantum = Duration::from_millis(1);

    // Two runtimes on two threads, ending in the other order than they
    // started: the handler stays ours until the last one ends.
    let (to_a, a_waits) = mpsc::channel::<()>();
    let (from_a, a_said) = mpsc::channel::<(usize, Option<usize>, usize)>();
    let a = std::thread::spawn(move || -> io::Result<()> {
        run(Config::preempting(Preempt::Asynchronous { quantum }), || {
            let before = RECEIVED.load(Ordering::Relaxed);
            sigurg_to_myself(); // not a tick of ours: passed on
            let passed_on = RECEIVED.load(Ordering::Relaxed) - before;
            from_a.send((current_handler(), timers_for(tid()), passed_on)).expect("main listens");
            a_waits.recv().expect("main says when"); // meanwhile thread B starts its runtime
        })?;
        assert_eq!(timers_for(tid()).unwrap_or(0), 0, "thread A's timer outlived its runtime");
        Ok(())
    });
    let (handler_during_a, a_timers, passed_on) = a_said.recv().expect("thread A reports");
    assert_ne!(handler_during_a, own, "while a runtime preempts, SIGURG goes to its handler");
    assert_eq!(passed_on, 1, "a SIGURG that is not a tick must reach the program's own handler");
    if let Some(count) = a_timers {
        assert_eq!(count, 1, "thread A's runtime has one timer, signalling thread A");
    }
    // B starts while A runs, A ends, then B ends.
    let (to_b, b_waits) = mpsc::channel::<()>();
    let (from_b, b_said) = mpsc::channel::<usize>();
    let b = std::thread::spawn(move || -> io::Result<()> {
        run(Config::preempting(Preempt::Checkpoints { quantum }), || {
            from_b.send(0).expect("main listens");
            b_waits.recv().expect("main says when");
            from_b.send(current_handler()).expect("main listens");
        })?;
        Ok(())
    });
    b_said.recv().expect("B runs");
    to_a.send(()).expect("A waits");
    a.join().expect("thread A")?;
    to_b.send(()).expect("B waits");
    let handler_after_a = b_said.recv().expect("B reports");
    assert_ne!(handler_after_a, own, "A ended, but B still preempts: the handler must stay ours");
    b.join().expect("thread B")?;
    assert_eq!(current_handler(), own, "the last preempting runtime ended: the program's handler is back");
    // Ours is gone: a SIGURG reaches the program's handler directly.
    let before = RECEIVED.load(Ordering::Relaxed);
    sigurg_to_myself();
    assert_eq!(RECEIVED.load(Ordering::Relaxed) - before, 1);
    // And a runtime without preemption never touches the handler.
    run(Config::default(), || assert_eq!(current_handler(), own))?;
    Ok(())
}
