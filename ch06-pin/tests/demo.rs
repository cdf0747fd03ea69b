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
    let mut demo = binary();
    // Under AddressSanitizer (`.ci/asan`), a local whose address is taken
    // lives on ASan's "fake stack", an anonymous mapping, unless this option
    // is off; then the demo's locals are on `[stack]` as in a plain build,
    // and the stack labels below are checked in both. (Without ASan the
    // variable means nothing. The library's tests keep the option on.)
    let asan = std::env::var("ASAN_OPTIONS").map(|set| format!("{set}:")).unwrap_or_default();
    demo.env("ASAN_OPTIONS", format!("{asan}detect_stack_use_after_return=0"));
    let output = demo.output().expect("the demo binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}: {stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));

    // Part 1: the move leaves the pointer behind; the swap crosses them.
    assert!(stdout.contains("built on the stack and initialised: points at itself"), "{stdout}");
    assert!(stdout.contains("moved into a Box: points ELSEWHERE"), "{stdout}");
    assert!(stdout.contains("the pointer still holds the old place"), "{stdout}");
    assert!(stdout.contains("each points at the other's name"), "{stdout}");
    // Part 2: every pinned value points at itself and reads its own name.
    for read in [r#"Some("boxed")"#, r#"Some("on the stack")"#, r#"Some("by hand")"#] {
        assert!(stdout.contains(read), "missing {read} in:\n{stdout}");
    }
    assert_eq!(stdout.matches(": points at itself").count(), 5, "{stdout}");
    assert!(stdout.contains("Pin::new on the Unpin SelfRef, mem::swap: points ELSEWHERE"), "{stdout}");
    // Part 3: the table, with the compiler's answers and the reasons that go
    // with them.
    assert!(stdout.contains("PinnedSelfRef                    | NO    | it holds a PhantomPinned"), "{stdout}");
    assert!(stdout.contains("SelfRef                          | yes   |"), "{stdout}");
    // Part 4: stepped by hand, then both versions as tasks: the same lines,
    // one address per task.
    assert!(stdout.contains("stepped, poll 2: AwaitingTwo, out points at its own buffer"), "{stdout}");
    assert!(stdout.contains("stepped, poll 3: AwaitingThree, out points at its own buffer"), "{stdout}");
    assert!(stdout.contains("moved between the polls, the value did not"), "{stdout}");
    assert_eq!(stdout.matches(r#"third answer "three"; buffer "one one-two three", 17 bytes"#).count(), 2, "{stdout}");
    assert!(stdout.contains("the two printed the same lines: yes"), "{stdout}");
    assert!(!stdout.contains("MORE THAN ONE PLACE") && !stdout.contains("ELSEWHERE (its"), "{stdout}");
    // Part 5: block_on pins on the stack, spawn in the task's allocation.
    let where_polled = |what: &str| {
        let mut lines = stdout.lines().skip_while(|line| !line.contains(what));
        let polled = lines.nth(1).unwrap_or_else(|| panic!("no line after {what:?} in:\n{stdout}"));
        region(polled).unwrap_or_else(|| panic!("no mapping named in {polled:?}"))
    };
    assert_eq!(where_polled("block_on(f): pinned with pin! in its frame"), "stack", "{stdout}");
    // The task's allocation is where the allocator puts small blocks: the
    // `[heap]` with glibc's malloc, ASan's own mappings under ASan. Part 1's
    // `Box` came from the same allocator on the same thread.
    let boxed = stdout.lines().skip_while(|line| !line.contains("moved into a Box")).nth(1).and_then(region);
    assert_eq!(Some(where_polled("spawn(f): pinned in task ")), boxed, "{stdout}");
}

/// The mapping the first address on `line` was found in: `heap` in
/// `name at 0x55… (heap), pointer -> …`.
fn region(line: &str) -> Option<&str> {
    let from_address = &line[line.find(" at 0x")?..];
    let open = from_address.find(" (")? + 2;
    let close = open + from_address[open..].find(')')?;
    Some(&from_address[open..close])
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
    assert!(stdout.contains("moved, pin!") && stdout.contains("Box::pin extra"), "{stdout}");
    assert!(stdout.contains("pinned on the stack"), "the legend: {stdout}");
    assert!(stdout.contains("FetchThreeInto (by hand)") && stdout.contains("async fn fetch_three_into_async"));
}
