//! Part 9 of the demo as a learner sees it, and what happens where
//! io_uring is refused: the demo says why in one line and goes on, the
//! bench leaves its io_uring table out, and the io_uring tests skip with
//! their reason. Refused the way containers do, with a seccomp filter in a
//! child process (`ch03_epoll::uring::refuse`); this process keeps its
//! io_uring.
//!
//! x86-64 only: a seccomp filter checks the CPU architecture by number.
#![cfg(target_arch = "x86_64")]

use std::io;
use std::process::{Command, Output};

use ch03_epoll::uring::refuse::output_refusing_io_uring;
use ch05_runtime::uring::{self, Unavailable};

mod common;
use common::uring_or_skip;

const BIN: &str = env!("CARGO_BIN_EXE_ch05-runtime");

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle).unwrap_or_else(|| panic!("missing {needle:?} in:\n{text}"))
}

#[test]
fn part_9_runs_the_gets_on_the_driver_and_shows_a_dropped_read_parked() -> io::Result<()> {
    if !uring_or_skip("demo part 9")? {
        return Ok(());
    }
    let output = Command::new(BIN).env_remove("DELAY_SERVER").output()?;
    let (out, errors) = text(&output);
    assert!(output.status.success(), "{out}\n{errors}");
    let part = position(&out, "--- 9. completion I/O");
    let order = [
        "the completion driver: a ring of ",
        r#"got ["a", "b", "c", "d", "e"] in "#,
        "of the TIMEOUTs were dropped in flight",
        r#"-> Ok(5), and the Vec back (the same allocation): "hello""#,
        "timeout -> Err(did not finish within 20 ms): the read future is dropped, its RECV is not; 1 operation(s)",
        "operations the driver still holds memory for: 0.",
    ];
    let mut last = part;
    for needle in order {
        // Each after the one before (part 1 has a line like the second).
        last += position(&out[last..], needle);
    }
    // The driver's own account of the cancel, from its thread.
    position(&out[part..], "-> -125 (Operation canceled): its future was dropped, so free its memory now");
    Ok(())
}

#[test]
fn the_demo_says_why_in_one_line_and_goes_on() {
    for errno in [libc::EPERM, libc::ENOSYS] {
        let reason = Unavailable::from_error(&io::Error::from_raw_os_error(errno)).expect("unavailable").to_string();
        let Some(output) = output_refusing_io_uring(BIN, &[], errno) else { return };
        let (out, errors) = text(&output);
        assert!(output.status.success(), "errno {errno}: exit {:?}\n{out}\n{errors}", output.status);
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("not available")).collect();
        assert_eq!(lines.len(), 1, "errno {errno}: one line says why\n{out}");
        assert!(lines[0].starts_with("[uring]") && lines[0].contains(&reason), "errno {errno}: {}", lines[0]);
        assert!(out.contains("--- 8. who gets the CPU"), "the parts before it ran\n{out}");
        assert!(out.find("--- 9.") < out.find("not available"), "{out}");
    }
}

#[test]
fn the_bench_leaves_its_io_uring_table_out() {
    let Some(output) = output_refusing_io_uring(BIN, &["bench", "--quick"], libc::EPERM) else { return };
    let (out, errors) = text(&output);
    assert!(output.status.success(), "{out}\n{errors}");
    assert!(out.contains("GETs at once"), "the epoll rows are there:\n{out}");
    assert!(!out.contains("io_uring driver"), "{out}");
    assert!(out.contains("no io_uring table: io_uring is not available here"), "{out}");
}

/// Run by the next test in a child process where io_uring is refused; on
/// its own (io_uring allowed or not) it passes too.
#[test]
fn child_a_uring_test() -> io::Result<()> {
    if !uring_or_skip("child_a_uring_test")? {
        return Ok(());
    }
    let runtime = ch05_runtime::Runtime::new()?;
    runtime.block_on(uring::time::sleep(std::time::Duration::from_millis(1)))
}

#[test]
fn the_io_uring_tests_skip_and_say_why() {
    let this_test_binary = std::env::current_exe().expect("the test binary's path");
    let args = ["--exact", "child_a_uring_test", "--test-threads", "1"];
    let program = this_test_binary.to_str().expect("a UTF-8 path");
    let Some(output) = output_refusing_io_uring(program, &args, libc::EPERM) else { return };
    let (out, errors) = text(&output);
    assert!(output.status.success(), "the test must pass (skipped), not fail:\n{out}\n{errors}");
    assert!(out.contains("1 passed"), "{out}");
    let why = Unavailable::from_error(&io::Error::from_raw_os_error(libc::EPERM)).expect("unavailable");
    let line = format!("skipped child_a_uring_test: io_uring is not available here: {why}");
    assert!(errors.contains(&line), "the reason is printed:\n{errors}");
}
