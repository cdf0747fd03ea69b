//! Runs the demo binary's main path, as a learner would.

use std::process::Command;

#[test]
fn the_demo_runs_and_shows_each_part() {
    let output = Command::new(env!("CARGO_BIN_EXE_ch04-coroutines"))
        .env_remove("DELAY_SERVER") // always the embedded server
        .output()
        .expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}: {stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));

    // Part 1: the poll / wait / wake phases and the no-busy-loop summary.
    for needle in ["poll task 0 (poll #1)", "wait in Poll::poll", "wake: token 0 is ready", "NotStarted -> Pending"] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(stdout.contains("coroutine 1 returned 15"), "{stdout}");
    // Parts 1 and 2 each check polls <= tasks + events and say so.
    assert_eq!(stdout.matches(", no busy loop").count(), 2, "{stdout}");

    // Part 2: results come back in input order (deterministic), and the
    // 50 ms answer (coroutine 3) arrives before the 250 ms one (coroutine 2).
    // Only that pair is checked, 200 ms apart: a loaded 2-core machine
    // delays a wake-up by milliseconds, not hundreds.
    assert!(stdout.contains("coroutines 2 to 6, one per GET"), "{stdout}");
    let at = |tag: &str| stdout.find(tag).unwrap_or_else(|| panic!("missing {tag}:\n{stdout}"));
    assert!(at("[coroutine 3]") < at("[coroutine 2]"), "the shortest delay answers first:\n{stdout}");
    assert!(stdout.contains(r#"join_all returned ["a", "b", "c", "d", "e"] (input order)"#), "{stdout}");

    // Part 3 and 4.
    assert!(stdout.contains("the three printed the same lines: yes"), "{stdout}");
    assert!(stdout.contains("hand-written FetchThree (enum)") && stdout.contains("sum of the states"), "{stdout}");
    // The line under the table says what the sizes show, from the sizes.
    assert!(stdout.contains("FetchThree is ") && stdout.contains("the sum of its states would be"), "{stdout}");
}

#[test]
fn help_and_unknown_arguments() {
    let help = Command::new(env!("CARGO_BIN_EXE_ch04-coroutines")).arg("--help").output().expect("runs");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("bench"));
    let wrong = Command::new(env!("CARGO_BIN_EXE_ch04-coroutines")).arg("nonsense").output().expect("runs");
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&wrong.stderr), "error: unknown command \"nonsense\" (see --help)\n");
}
