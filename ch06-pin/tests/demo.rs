//! Runs the demo binary's main path, as a learner would, and its other
//! commands: `--help`, a wrong argument, `bench --quick`.

use std::process::Command;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ch06-pin"));
    command.env_remove("DELAY_SERVER"); // always the embedded server
    command
}

#[test]
#[cfg_attr(miri, ignore = "runs the binary in another process")]
fn the_demo_runs_and_shows_each_part() {
    let output = binary().output().expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}: {stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));

    // Part 1: the move leaves the pointer behind; the swap crosses them.
    assert!(stdout.contains("moved into a Box: name at"), "{stdout}");
    assert!(stdout.contains("(points ELSEWHERE)"), "{stdout}");
    assert!(stdout.contains("each points at the other's name"), "{stdout}");
    // Part 2: every pinned value points at itself and reads its own name.
    for read in [r#"Some("boxed")"#, r#"Some("on the stack")"#, r#"Some("by hand")"#] {
        assert!(stdout.contains(read), "missing {read} in:\n{stdout}");
    }
    // Part 3: the table, with the compiler's answers.
    assert!(stdout.contains("PinnedSelfRef                      | NO"), "{stdout}");
    // Part 4: stepped by hand, then both versions as tasks: the same lines,
    // one address per task.
    assert!(stdout.contains("stepped, poll 2: AwaitingTwo") && stdout.contains("(its own buffer)"), "{stdout}");
    assert_eq!(stdout.matches(r#"third answer "three"; buffer "one one-two three", 17 bytes"#).count(), 2, "{stdout}");
    assert!(stdout.contains("the two printed the same lines: yes"), "{stdout}");
    assert!(!stdout.contains("MORE THAN ONE PLACE") && !stdout.contains("ELSEWHERE (its"), "{stdout}");
    // Part 5: block_on pins on the stack, spawn in the task's allocation.
    assert!(stdout.contains("pin! in block_on's frame") && stdout.contains("'s Arc (ch05 task.rs"), "{stdout}");
    // Which mapping an address is in can be told only where locals live on
    // the main thread's `[stack]` and boxes on the `[heap]`; under
    // AddressSanitizer both live in its own anonymous mappings.
    if stdout.contains("built on the stack and initialised: name at 0x") && stdout.contains(" (stack), pointer") {
        assert!(stdout.contains("(stack): pinned with pin! in block_on's frame"), "{stdout}");
        assert!(stdout.contains("(heap): pinned inside task "), "{stdout}");
    } else {
        eprintln!("not checking the stack / heap labels: the demo's locals are not on the [stack] mapping here");
    }
}

#[test]
#[cfg_attr(miri, ignore = "runs the binary in another process")]
fn help_and_wrong_arguments() {
    let help = binary().arg("--help").output().expect("runs");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("bench"));

    let wrong = binary().arg("nonsense").env("RUST_BACKTRACE", "1").output().expect("runs");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line, no backtrace: {stderr}");
    assert!(stderr.contains("unknown command \"nonsense\""), "{stderr}");

    let wrong = binary().args(["bench", "--slow"]).output().expect("runs");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--quick"));
}

#[test]
#[cfg_attr(miri, ignore = "runs the binary in another process")]
fn the_bench_prints_its_tables() {
    let output = binary().args(["bench", "--quick"]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.matches("machine: ").count(), 2, "the machine above each table: {stdout}");
    assert!(stdout.contains("pin! on the stack") && stdout.contains("Box::pin"), "{stdout}");
    assert!(stdout.contains("FetchThreeInto (by hand)") && stdout.contains("async fn fetch_three_into_async"));
}
