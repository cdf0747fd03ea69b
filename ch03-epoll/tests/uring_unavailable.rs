//! Where io_uring is refused, the demo says why in one line and goes on,
//! the bench leaves its io_uring rows out, and the io_uring tests skip.
//!
//! Proven here on a machine where io_uring works, by refusing it the way
//! containers do: a seccomp filter, installed in a child process just
//! before it starts the program, makes `io_uring_setup` fail with `EPERM`
//! (Docker's default profile) or `ENOSYS` (gVisor, old kernels). The
//! filter only touches the child; this process keeps its io_uring
//! (`ch03_epoll::uring::refuse`).
//!
//! x86-64 only: a seccomp filter checks the CPU architecture by number.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::io;

use ch03_epoll::uring::refuse::output_refusing_io_uring;
use ch03_epoll::uring::{Ring, Sqe, Unavailable};

mod common;
use common::ring_or_skip;

#[test]
fn the_demo_says_why_in_one_line_and_goes_on() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        // The reason the demo should give (for EPERM it depends on this
        // machine's kernel.io_uring_disabled; the classification has its
        // own test in tests/uring.rs).
        let reason = Unavailable::from_error(&io::Error::from_raw_os_error(errno)).expect("unavailable").to_string();
        let Some(output) = output_refusing_io_uring(env!("CARGO_BIN_EXE_ch03-epoll"), &[], errno) else { return };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "errno {errno}: exit {:?}\n{stdout}\n{stderr}", output.status);
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("not available")).collect();
        assert_eq!(lines.len(), 1, "errno {errno}: one line says why\n{stdout}");
        assert!(lines[0].starts_with("[uring]") && lines[0].contains(&reason), "errno {errno}: {}", lines[0]);
        assert!(stdout.contains("--- 6. the same 10 requests through mio ---"), "the sections before it ran\n{stdout}");
        assert!(!stdout.contains("--- 8."), "section 8 is skipped\n{stdout}");
    }
}

#[test]
fn the_bench_leaves_its_io_uring_rows_out() {
    let exe = env!("CARGO_BIN_EXE_ch03-epoll");
    let args = ["bench", "--sizes", "2", "--delay-ms", "1"];
    let Some(output) = output_refusing_io_uring(exe, &args, libc::EPERM) else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().filter(|l| l.contains(" 2/2 | ")).count(), 3, "three approaches:\n{stdout}");
    assert!(!stdout.contains("io_uring, 1 thread"), "{stdout}");
    assert!(stdout.contains("no io_uring rows: io_uring is not available on this machine"), "{stdout}");
}

/// Run by the next test in a child process where io_uring is refused; on
/// its own (io_uring allowed or not) it passes too.
#[test]
fn child_a_ring_test() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("child_a_ring_test", || Ring::new(2))? else { return Ok(()) };
    // SAFETY: a NOP carries no address.
    unsafe { ring.push(&Sqe::nop(1)) }?;
    ring.submit_and_wait(1)?;
    assert_eq!(ring.completion()?.map(|done| done.res), Some(0));
    Ok(())
}

#[test]
fn the_io_uring_tests_skip_and_say_why() {
    let this_test_binary = std::env::current_exe().expect("the test binary's path");
    let args = ["--exact", "child_a_ring_test", "--test-threads", "1"];
    let program = this_test_binary.to_str().expect("a UTF-8 path");
    let Some(output) = output_refusing_io_uring(program, &args, libc::EPERM) else { return };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the test must pass (skipped), not fail:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    let why = Unavailable::from_error(&io::Error::from_raw_os_error(libc::EPERM)).expect("unavailable");
    let line = format!("skipped child_a_ring_test: io_uring is not available here: {why}");
    assert!(stderr.contains(&line), "the reason is printed:\n{stderr}");
}
