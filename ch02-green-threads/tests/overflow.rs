//! Stack overflows that must be reported by name, not end in a bare
//! `SIGSEGV`. Each test runs itself again as a child process (a crash cannot
//! be caught in-process) with `CH02_OVERFLOW_CHILD` set, and asserts on how
//! the child died and what it printed.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use ch02_green_threads::{Config, Switch, run, spawn, yield_now};

/// Set in the child: which overflow to commit.
const CHILD: &str = "CH02_OVERFLOW_CHILD";

/// Runs test `name` of this binary as a child with `CHILD=name`, and returns
/// its signal and stderr; `None` under AddressSanitizer, whose own SIGSEGV
/// handling meets the guard page before ours (the test then says it skipped).
fn run_child(name: &str) -> Option<(Option<i32>, String)> {
    if ch02_green_threads::asan::ENABLED {
        eprintln!("{name}: skipped under AddressSanitizer (it handles the overflow's SIGSEGV itself)");
        return None;
    }
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("the test binary starts again");
    Some((output.status.signal(), String::from_utf8_lossy(&output.stderr).into_owned()))
}

/// Recurses forever, yielding on every level: the call into the switch is the
/// deepest point of each level, so the guard page is often hit by the
/// switch's own pushes (always in a release build, where the frames are
/// small), at a moment when the runtime already names the *next* fiber as
/// the running one.
#[allow(unconditional_recursion)] // on purpose: only the guard page stops it
fn recurse_and_yield(depth: u64) -> u64 {
    yield_now();
    black_box(recurse_and_yield(black_box(depth + 1))) + 1
}

#[test]
fn an_overflow_inside_the_switch_is_reported_for_the_right_fiber() {
    overflow_while_switching("an_overflow_inside_the_switch_is_reported_for_the_right_fiber", Switch::Call);
}

#[test]
fn an_overflow_inside_the_inline_switch_is_reported_for_the_right_fiber() {
    // The inline switch pushes fewer bytes, but the same way: after the
    // runtime already names the next fiber as the running one.
    overflow_while_switching("an_overflow_inside_the_inline_switch_is_reported_for_the_right_fiber", Switch::INLINE);
}

fn overflow_while_switching(name: &str, switch: Switch) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let _ = run(Config::switching_with(switch), || spawn(|| recurse_and_yield(0)).map(|_| ()));
        return; // not reached: the child dies of the overflow
    }
    let Some((signal, stderr)) = run_child(name) else { return };
    assert_eq!(signal, Some(libc::SIGABRT), "stderr:\n{stderr}");
    assert!(stderr.contains("green thread 1 overflowed its 64 KiB stack"), "stderr:\n{stderr}");
}

/// One call = at least 512 bytes of stack, until the guard page stops it.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    black_box(recurse(black_box(depth + 1))) + frame[63]
}

#[test]
fn an_overflow_of_the_main_fiber_still_gets_rusts_own_report() {
    // The main fiber runs on the thread's own stack, whose guard page Rust's
    // handler knows: ours must pass the fault on to it, not swallow it.
    let name = "an_overflow_of_the_main_fiber_still_gets_rusts_own_report";
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let thread = std::thread::Builder::new().name("small".into()).stack_size(256 * 1024);
        let overflowing = thread.spawn(|| run(Config::default(), || recurse(0))).expect("thread starts");
        let _ = overflowing.join();
        return; // not reached
    }
    let Some((signal, stderr)) = run_child(name) else { return };
    assert_eq!(signal, Some(libc::SIGABRT), "stderr:\n{stderr}");
    // "thread 'small' (<tid>) has overflowed its stack" (recent Rust prints the id)
    assert!(stderr.contains("thread 'small'") && stderr.contains("has overflowed its stack"), "stderr:\n{stderr}");
}
