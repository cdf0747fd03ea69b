//! Runs the built binary: the guided demo, `--help`, a bad command, and a
//! tiny bench (which starts its delay server in a child process).

use std::process::{Command, Output};

use ch03_epoll::client;
use ch03_epoll::uring::{Ring, Unavailable};

/// Why io_uring is not available here, or `None` if it is.
fn uring_unavailable() -> Option<Unavailable> {
    Ring::new(1).err().map(|e| Unavailable::from_error(&e).unwrap_or_else(|| panic!("io_uring_setup: {e}")))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ch03-epoll"))
        .args(args)
        .env_remove("DELAY_SERVER") // always the embedded server
        .output()
        .expect("the demo binary runs")
}

#[test]
fn the_demo_runs_and_shows_each_section() {
    let output = run(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));

    // 1. three syscall lines, each in the trace format, each fully written.
    for how in ["the `syscall` instruction (inline asm)", "libc::write", "our own extern \"C\" fn write"] {
        assert!(
            stdout.lines().any(|l| l.starts_with("[syscall]") && l.ends_with(&format!("written by {how}"))),
            "{how}\n{stdout}"
        );
    }
    assert_eq!(stdout.matches("the kernel took").count(), 3);

    // 2 and 6. every answer exactly once per client.
    for component in ["[epoll]", "[mio]"] {
        for i in 0..10 {
            let answered = format!("answered \"answer {i}\"");
            let count = stdout.lines().filter(|l| l.starts_with(component) && l.ends_with(&answered)).count();
            assert_eq!(count, 1, "{component} answer {i}\n{stdout}");
        }
    }
    // The interest printed is the one the client registers.
    assert!(stdout.contains(&format!("interest {}", client::INTEREST)), "{stdout}");

    // 3. level reports every round, edge once, and alone it stays silent
    // until more data arrives, unread bytes or not.
    assert_eq!(stdout.matches(": token 0 IN  read 2 bytes").count(), 3, "{stdout}");
    assert_eq!(stdout.matches(": token 1 IN  read 2 bytes").count(), 1, "{stdout}");
    assert!(stdout.contains("edge alone: 0 event(s)"), "{stdout}");
    assert!(stdout.contains("2 more bytes arrive: 1 event(s)"), "{stdout}");
    assert!(stdout.contains("in 3 rounds, level-triggered reported 3 time(s), edge-triggered 1"), "{stdout}");

    // 4. oneshot: one event, none, one after re-arming.
    assert!(stdout.contains("after the 1st write: 1 event(s)"), "{stdout}");
    assert!(stdout.contains("after the 2nd write: 0 event(s)"), "{stdout}");
    assert!(stdout.contains("after reregister:    1 event(s)"), "{stdout}");

    // 5. the regular file is refused with EPERM.
    assert!(stdout.contains("refused: Operation not permitted"), "{stdout}");

    // 7 and 8, or one line saying why not.
    if let Some(why) = uring_unavailable() {
        assert!(stdout.contains(&format!("io_uring is not available here ({why})")), "{stdout}");
        return;
    }
    assert!(stdout.contains("8 NOPs pushed, then submit_and_wait(8): 1 io_uring_enter submitted 8"), "{stdout}");
    assert!(stdout.contains("READ of an empty pipe submitted; completions now: none."), "{stdout}");
    assert!(stdout.contains("completions: WRITE -> 11, READ -> 11"), "{stdout}");
    assert!(stdout.contains("the buffer now holds \"hello, ring\""), "{stdout}");
    assert!(stdout.contains("TIMEOUT -> -62 (Timer expired)"), "{stdout}");
    assert!(stdout.contains("ASYNC_CANCEL -> 0") && stdout.contains("READ -> -125 (Operation canceled)"), "{stdout}");
    for i in 0..10 {
        let answered = format!("answered \"answer {i}\"");
        let count = stdout.lines().filter(|l| l.starts_with("[uring]") && l.ends_with(&answered)).count();
        assert_eq!(count, 1, "[uring] answer {i}\n{stdout}");
    }
    // The first io_uring_enter carries all ten CONNECTs and the deadline.
    assert!(stdout.contains("io_uring_enter: submitted 11 operation(s)"), "{stdout}");
    let calls = |model: &str| stdout.lines().find(|l| l.contains(model)).unwrap_or_default().to_string();
    assert!(calls("  epoll:    ").contains("epoll_ctl 20"), "{stdout}");
    assert!(calls("  io_uring: ").contains("socket 10, close 10, io_uring_enter"), "{stdout}");
}

#[test]
fn help_and_a_bad_command() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("USAGE"));

    let bad = run(&["frobnicate"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr), "error: unknown command \"frobnicate\" (see --help)\n");
}

#[test]
fn a_tiny_bench_runs_against_a_child_server() {
    let output = run(&["bench", "--sizes", "3", "--delay-ms", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("delay server in child process"), "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.contains(" 3/3 | ")).collect();
    let approaches = if uring_unavailable().is_some() { 3 } else { 4 };
    assert_eq!(rows.len(), approaches, "every approach, every request answered:\n{stdout}");
    // Our two clients count their system calls; the others show "-".
    for row in rows {
        let counted = row.starts_with("epoll") || row.starts_with("io_uring");
        let syscalls = row.split(" | ").nth(5).unwrap_or_default().trim();
        assert_eq!(syscalls.parse::<f64>().is_ok(), counted, "{row}");
    }
}

#[test]
fn a_tiny_bench_with_json_prints_only_json_lines() {
    let output = run(&["bench", "--sizes", "3", "--delay-ms", "1", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with(r#"{"chapter":"ch03","metric":"#) && l.ends_with('}')), "{stdout}");
    assert!(lines[0].contains(r#""metric":"machine""#), "the machine comes first:\n{stdout}");
    // Six figures per approach (wall, CPU, peak RSS, RSS rise, answered,
    // overflows), and system calls per request for our two clients.
    let (approaches, counted) = if uring_unavailable().is_some() { (3, 1) } else { (4, 2) };
    assert_eq!(lines.len(), 1 + approaches * 6 + counted, "{stdout}");
    for approach in ["epoll, 1 thread", "mio, 1 thread", "thread per request"] {
        let answered = format!(r#""metric":"{approach} N=3: answered (worst run)","value":3,"unit":"count""#);
        assert!(stdout.contains(&answered), "{approach}\n{stdout}");
    }
    // What the bench says on the way goes to stderr.
    assert!(String::from_utf8_lossy(&output.stderr).contains("delay server in child process"));
}
