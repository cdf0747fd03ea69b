//! The chapter's binary, run as a learner runs it.

use std::io::{self, BufRead, BufReader};
use std::process::{Command, Stdio};

use ch01_os_threads::{client, http};

const BIN: &str = env!("CARGO_BIN_EXE_ch01-os-threads");

#[test]
fn the_demo_runs_and_tells_its_story() -> io::Result<()> {
    let output = Command::new(BIN).env_remove("DELAY_SERVER").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));

    for expected in [
        "embedded delay server listening on 127.0.0.1:",
        "about the SUM of the delays (1150 ms)",
        "about the LONGEST delay (400 ms)",
        "primes below",
        "hello from write(2)",
        "returned 62",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // Sequentially, answers come in the order asked; with a thread each, in
    // the order of their delays (100 ms "two" first, 400 ms "one" last).
    let position = |needle: &str| stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{stdout}"));
    let part2 = position("--- 2.");
    assert!(position("got \"one\"") < position("got \"two\""), "sequential order");
    let in_part2 = |needle: &str| part2 + stdout[part2..].find(needle).expect(needle);
    assert!(in_part2("got \"two\"") < in_part2("got \"five\""));
    assert!(in_part2("got \"five\"") < in_part2("got \"four\""));
    assert!(in_part2("got \"four\"") < in_part2("got \"three\""));
    assert!(in_part2("got \"three\"") < in_part2("got \"one\""));
    Ok(())
}

#[test]
fn serve_runs_a_standalone_server() -> io::Result<()> {
    let mut child = Command::new(BIN).args(["serve", "--port", "0"]).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let addr = first.rsplit(' ').next().and_then(|a| a.parse().ok());
    let result = match addr {
        Some(addr) => client::get(addr, &http::path(50, "hello")).map(|answer| answer.body),
        None => Err(io::Error::other(format!("no address in {first:?}"))),
    };
    child.kill()?;
    child.wait()?;
    assert_eq!(result?, "hello");
    Ok(())
}

#[test]
fn help_and_unknown_commands() -> io::Result<()> {
    let help = Command::new(BIN).arg("--help").output()?;
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("serve [OPTIONS]"));

    let unknown = Command::new(BIN).arg("frobnicate").output()?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown command \"frobnicate\""));

    let bad_port = Command::new(BIN).args(["serve", "--port", "http"]).output()?;
    assert!(!bad_port.status.success());
    assert!(String::from_utf8_lossy(&bad_port.stderr).contains("--port takes a number"));
    Ok(())
}
