//! The chapter's binary, run as a learner runs it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use ch01_os_threads::{client, http};

const BIN: &str = env!("CARGO_BIN_EXE_ch01-os-threads");

#[test]
fn the_demo_runs_and_tells_its_story() -> io::Result<()> {
    let output = Command::new(BIN).env_remove("DELAY_SERVER").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));

    for expected in [
        "embedded delay server listening on 127.0.0.1:",
        "--- 1. 5 requests, one after another, on one thread ---",
        "all 5 took",
        "about the SUM of the delays (1150 ms)",
        "--- 2. the same 5 requests, one OS thread each ---",
        "about the LONGEST delay (400 ms)",
        "primes below",
        "hello from write(2)",
        "returned 62",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // Sequentially, answers come in the order asked: each GET waits for the
    // one before it to be answered (cause and effect, no clock involved).
    let position = |needle: &str| stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{stdout}"));
    let part2 = position("--- 2.");
    let in_part1 = |needle: &str| position(needle);
    assert!(in_part1("got \"one\"") < in_part1("GET /100/two"), "sequential: 'two' is asked after 'one' came");
    // With a thread each, the 100 ms answer comes before the 400 ms one.
    // That one is timing, so only this pair is checked: 300 ms apart, while
    // a loaded 2-core machine delays a wake-up by milliseconds, not hundreds.
    let in_part2 = |needle: &str| part2 + stdout[part2..].find(needle).expect(needle);
    assert!(in_part2("got \"two\"") < in_part2("got \"one\""), "{stdout}");
    Ok(())
}

/// Starts `serve` with `args` and a thread that forwards its stdout lines.
fn serve(args: &[&str]) -> io::Result<(Child, Receiver<String>, SocketAddr)> {
    let mut child = Command::new(BIN).arg("serve").args(args).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = next_line(&receiver)?;
    let addr = first.rsplit(' ').next().and_then(|a| a.parse().ok());
    let addr = addr.ok_or_else(|| io::Error::other(format!("no address in {first:?}")))?;
    Ok((child, receiver, addr))
}

/// The next line the server printed; fails (instead of hanging) after 10 s.
fn next_line(lines: &Receiver<String>) -> io::Result<String> {
    lines.recv_timeout(Duration::from_secs(10)).map_err(|e| io::Error::other(format!("no line from serve: {e}")))
}

/// Reads lines until one contains `needle`; returns it.
fn line_with(lines: &Receiver<String>, needle: &str) -> io::Result<String> {
    loop {
        let line = next_line(lines)?;
        if line.contains(needle) {
            return Ok(line);
        }
    }
}

#[test]
fn serve_runs_a_standalone_server() -> io::Result<()> {
    let (mut child, _lines, addr) = serve(&["--port", "0"])?;
    let result = client::get(addr, &http::path(50, "hello")).map(|answer| answer.body);
    child.kill()?;
    child.wait()?;
    assert_eq!(result?, "hello");
    Ok(())
}

#[test]
fn serve_logs_refusals_and_why_each_connection_ended() -> io::Result<()> {
    let (mut child, lines, addr) = serve(&["--port", "0", "--max-connections", "1"])?;
    let result = (|| -> io::Result<()> {
        // A client that connects and closes without a word.
        drop(TcpStream::connect(addr)?);
        line_with(&lines, "the client closed the connection without sending anything")?;
        // One that sends half a request, then closes.
        let mut half = TcpStream::connect(addr)?;
        half.write_all(b"GET /1/x HTT")?;
        drop(half);
        assert!(line_with(&lines, "closed:")?.contains("after 12 bytes, before the request was complete"));
        // One that takes the only slot, and one refused because of it.
        let mut holder = TcpStream::connect(addr)?;
        holder.write_all(&http::request(addr, &http::path(60_000, "x")))?;
        let mut refused = TcpStream::connect(addr)?;
        let mut answer = Vec::new();
        refused.set_read_timeout(Some(Duration::from_secs(10)))?;
        refused.read_to_end(&mut answer)?;
        assert_eq!(http::parse_response(&answer)?.status, 503);
        assert!(line_with(&lines, "503 <- 127.0.0.1:")?.contains("over the cap of 1 connections"));
        // The holder gives up during its delay: logged, and its slot is free.
        drop(holder);
        line_with(&lines, "into its delay; slot freed")?;
        Ok(())
    })();
    child.kill()?;
    child.wait()?;
    result
}

fn run(args: &[&str]) -> io::Result<Output> {
    // RUST_BACKTRACE=1: even then, a user error is one line, not a backtrace.
    Command::new(BIN).args(args).env("RUST_BACKTRACE", "1").env_remove("DELAY_SERVER").output()
}

/// Asserts a failed run printed exactly one line on stderr, containing `needle`.
fn one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no backtrace:\n{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "{stderr}");
}

#[test]
fn help_and_user_errors() -> io::Result<()> {
    let help = run(&["--help"])?;
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for section in ["USAGE:", "COMMANDS:", "SERVE OPTIONS:", "ENVIRONMENT:"] {
        assert!(text.contains(section), "{section} in:\n{text}");
    }

    one_line_error(&run(&["frobnicate"])?, "unknown command \"frobnicate\" (see --help)");
    one_line_error(&run(&["serve", "--port", "http"])?, "--port takes a number from 0 to 65535, not \"http\"");
    one_line_error(&run(&["serve", "--port"])?, "--port needs a value");
    one_line_error(&run(&["serve", "--host", "localhost:1"])?, "--host \"localhost:1\" is not an IP address");
    one_line_error(&run(&["serve", "--colour"])?, "unknown serve option \"--colour\"");

    // A port someone else already listens on.
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    one_line_error(&run(&["serve", "--port", &port])?, &format!("cannot listen on 127.0.0.1:{port}"));
    Ok(())
}

/// `cargo run -p ch01-os-threads | head -1`: once the reader is gone, the
/// program ends quietly (by the `SIGPIPE` its next write gets), not with a
/// panic and a backtrace about a broken pipe.
#[test]
fn a_closed_pipe_ends_the_demo_quietly() -> io::Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(BIN)
        .env_remove("DELAY_SERVER")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first)?; // then the pipe closes
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr)?;
    let status = child.wait()?;
    assert!(first.contains("delay server"), "{first}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}
