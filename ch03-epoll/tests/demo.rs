//! Runs the built binary: the guided demo, `--help`, a bad command, and a
//! tiny bench (which starts its delay server in a child process).

use std::process::{Command, Output};

use ch03_epoll::client;

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
    assert_eq!(rows.len(), 3, "three approaches, every request answered:\n{stdout}");
}

#[test]
fn a_tiny_bench_with_json_prints_only_json_lines() {
    let output = run(&["bench", "--sizes", "3", "--delay-ms", "1", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with(r#"{"chapter":"ch03","metric":"#) && l.ends_with('}')), "{stdout}");
    assert!(lines[0].contains(r#""metric":"machine""#), "the machine comes first:\n{stdout}");
    // Six figures per approach (wall, CPU, peak RSS, RSS rise, answered, overflows).
    assert_eq!(lines.len(), 1 + 3 * 6, "{stdout}");
    for approach in ["epoll, 1 thread", "mio, 1 thread", "thread per request"] {
        let answered = format!(r#""metric":"{approach} N=3: answered (worst run)","value":3,"unit":"count""#);
        assert!(stdout.contains(&answered), "{approach}\n{stdout}");
    }
    // What the bench says on the way goes to stderr.
    assert!(String::from_utf8_lossy(&output.stderr).contains("delay server in child process"));
}
