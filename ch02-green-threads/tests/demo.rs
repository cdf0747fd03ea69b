//! The binary: the guided demo's main path, `overflow`, and argument errors.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

fn run_binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ch02-green-threads"))
        .args(args)
        .env_remove("DELAY_SERVER")
        .output()
        .expect("the demo binary starts")
}

/// The text after the `[component]  N ms  ` prefix of each trace line from `who`.
fn said_by<'a>(stdout: &'a str, who: &str) -> Vec<&'a str> {
    let prefix = format!("[{who}]");
    stdout
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.split_once(" ms  ").map(|(_, text)| text))
        .collect()
}

#[test]
fn the_guided_demo_runs_every_step_and_exits_0() {
    let output = run_binary(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{}", output.status, String::from_utf8_lossy(&output.stderr));

    // Step 1: exact interleaving of the three counters.
    let counts: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("[fiber") && l.contains("count "))
        .map(|l| format!("{} {}", &l[1..8], l.rsplit("count ").next().unwrap_or("")))
        .collect();
    let expected: Vec<String> = (1..=3).flat_map(|i| (1..=3).map(move |f| format!("fiber {f} {i}"))).collect();
    assert_eq!(counts, expected);
    assert_eq!(stdout.matches("returned 6; it used").count(), 3);

    // Step 2: the counter is right.
    assert!(stdout.contains("counter = 1000000 (expected 1000000)"), "{stdout}");

    // Step 3: the hog finishes before the green ticker ticks at all: no
    // tick between the step's header and the hog's last line, all three
    // right after it, and the demo's own count agrees.
    let header = stdout.find("--- 3.").expect("step 3");
    let step3 = header + stdout[header..].find('\n').expect("the header's end");
    let hog_done = step3 + stdout[step3..].find("done after").expect("the hog's last line");
    assert!(!stdout[step3..hog_done].contains("tick"), "a tick before the hog finished:\n{}", &stdout[step3..hog_done]);
    let after: Vec<&str> = stdout[hog_done..].lines().skip(1).take(3).collect();
    assert!(after.iter().all(|l| l.starts_with("[fiber 2]") && l.contains("tick")), "{after:?}");
    assert!(stdout.contains("the ticker ticked 0 of 3 times while the hog computed"), "{stdout}");
    assert_eq!(said_by(&stdout, "tick thread").len(), 3);

    // Step 4: the blocking read got its answer, and the ticker stalled meanwhile.
    assert!(stdout.contains("got \"slow\""), "{stdout}");
    let got = stdout.find("got \"slow\"").expect("answer line");
    assert!(stdout[got..].contains("tick 2"), "tick 2 comes only after the blocking read returns");

    // Step 5: three runtimes, the spinner and two printers each.
    taking_the_cpu_back(&stdout[stdout.find("--- 5.").expect("step 5")..]);
    assert!(stdout.trim_end().ends_with("done"));
}

/// Step 5's output: cooperatively, no printer line before the spinner
/// stops at its bound; with checkpoints and asynchronously, every line
/// while it spins, and the spinner stops when told, after forced switches
/// of the kind the runtime was asked for.
fn taking_the_cpu_back(step5: &str) {
    let parts: Vec<&str> = step5.split("[main]").filter(|part| part.contains("spinning,")).collect();
    assert_eq!(parts.len(), 3, "{step5}");
    let cooperative = &step5[..step5.find("checkpoints (Preempt::Checkpoints").expect("the second runtime")];
    let stop = cooperative.find("stopped (at its bound)").expect("the spinner stops at its bound");
    assert!(!cooperative[..stop].contains("line "), "a printer ran before the spinner stopped:\n{cooperative}");
    assert!(cooperative.contains("the printers printed 0 of their 6 lines while the spinner spun"), "{cooperative}");
    for (kind, how) in [("checkpoints", "Preempt::Checkpoints"), ("asynchronous", "Preempt::Asynchronous")] {
        let start = step5.find(&format!("{kind} ({how}")).expect("the runtime's line");
        let part = &step5[start..];
        let end = part.find("after the quantum ended").expect("the latency line");
        let part = &part[..end];
        assert_eq!(part.matches("(the spinner is still spinning)").count(), 6, "{part}");
        assert!(part.contains("stopped (told to stop)"), "{part}");
        assert!(part.contains("the printers printed 6 of their 6 lines while the spinner spun"), "{part}");
        let forced = match kind {
            "checkpoints" => " at checkpoints, 0 asynchronous)",
            _ => "(0 at checkpoints, ",
        };
        assert!(part.contains(forced), "{kind}: {part}");
    }
}

#[test]
fn overflow_dies_by_sigabrt_with_the_guard_page_message() {
    if ch02_green_threads::asan::ENABLED {
        // AddressSanitizer's own SIGSEGV handling meets the guard page first.
        eprintln!("skipped under AddressSanitizer: it handles the overflow's SIGSEGV itself");
        return;
    }
    let output = run_binary(&["overflow"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "status {:?}, stderr:\n{stderr}", output.status);
    assert!(stderr.contains("green thread 1 overflowed its 64 KiB stack"), "stderr:\n{stderr}");
}

#[test]
fn help_and_bad_arguments() {
    let help = run_binary(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("overflow"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("preempt"));
    let bad = run_binary(&["nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr), "error: unknown command \"nonsense\" (see --help)\n");
}
