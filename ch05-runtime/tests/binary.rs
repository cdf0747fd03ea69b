//! The binary as a learner runs it: the demo (plain, `--trace`,
//! `--trace-svg`), `serve`, `bench --quick`, `--help` and mistakes.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ch05-runtime");

fn run(args: &[&str]) -> io::Result<Output> {
    Command::new(BIN).args(args).env_remove("DELAY_SERVER").output()
}

fn stdout(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "exit {}:\n{text}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    text
}

fn position(text: &str, needle: &str) -> usize {
    text.find(needle).unwrap_or_else(|| panic!("missing {needle:?} in:\n{text}"))
}

#[test]
fn the_demo_shows_every_part() -> io::Result<()> {
    let out = stdout(&run(&[])?);
    // Part 1: the cycle, from both sides, and the five answers.
    for needle in [
        "[executor]",
        "nothing to run: park",
        "awake: 0 task(s) woken on this thread, 1 in the injector",
        "[reactor]",
        "epoll_wait:",
        "wake its reader",
        r#"got ["a", "b", "c", "d", "e"]"#,
        "about the LONGEST delay (250 ms), not the sum",
    ] {
        position(&out, needle);
    }
    // The 50 ms answer comes before the 250 ms one: 200 ms apart, far more
    // than a loaded machine delays one wake-up.
    assert!(
        position(&out, r#"got "b" (asked with a 50 ms delay)"#)
            < position(&out, r#"got "a" (asked with a 250 ms delay)"#)
    );
    // Part 2: the sleep, and the timeout dropping its GET before reporting.
    position(&out, "slept ");
    let dropped = position(&out, "the GET future was dropped: its socket closed");
    assert!(dropped < position(&out, "Err(did not finish within 50 ms)"), "dropped before timeout returned");
    // Part 3: the JoinErrors, then the runtime carries on.
    let panicked = position(&out, "panicked: deliberately, to show JoinError");
    let aborted = position(&out, "was aborted)");
    assert!(panicked < aborted && aborted < position(&out, r#"carries on: got "still serving""#));
    // Part 4: epoll refuses a file; spawn_blocking reads it on a pool thread.
    position(&out, "Operation not permitted");
    position(&out, "on thread blocking-");
    // Part 5: three messages from one task to another, then the end.
    assert_eq!(out.matches("received ").count(), 3, "{out}");
    position(&out, "the channel closed after 3 message(s)");
    // Part 6: with its own reactor the wakes happen on the executor's own
    // thread (part 1's came through the injector); then the workers.
    let own = position(&out, "on a runtime with its own reactor");
    assert!(position(&out, "nothing to run: wait in our reactor") > own);
    assert!(position(&out, "awake: 1 task(s) woken on this thread, 0 in the injector") > own);
    assert!(out.contains("on thread worker-1") || out.contains("on thread worker-2"), "{out}");
    assert_eq!(out.matches("same futures, another executor").count(), 2, "{out}");
    // Part 7: the smallest executor, and a std-only future.
    position(&out, r#"ran a sleep and a GET: "no runtime needed""#);
    position(&out, "a future that imports nothing from ch05 ran as our task");
    // Part 8: each case in order, with its measured lines (the figures vary;
    // the test of fairness itself is tests/fairness.rs).
    let part = position(&out, "--- 8. who gets the CPU");
    let order = [
        "budget off: the sleep woke ",
        "the receiver ran 1 poll(s)",
        "budget 128: the sleep woke ",
        "injector taken only when the local queue is empty:",
        "the task yielded 200000 times",
        "injector taken first every 31 polls:",
        "(c) a task that computes for 100 ms",
    ];
    let mut last = part;
    for needle in order {
        let at = position(&out, needle);
        assert!(at > last, "part 8: {needle:?} out of order in:\n{out}");
        last = at;
    }
    Ok(())
}

#[test]
fn the_demos_slow_polls_are_named_on_stderr() -> io::Result<()> {
    let output = run(&[])?;
    let errors = String::from_utf8_lossy(&output.stderr);
    // Part 8 holds the thread twice on purpose: the receiver without a
    // budget, and the task that computes. Each report names the task and
    // where it was spawned. (That a task is reported only once is
    // tests/fairness.rs's `a_slow_poll_is_reported_with_where_its_task_was_spawned`.)
    let reports = errors.lines().filter(|line| line.contains("SLOW POLL: task ")).count();
    assert!(reports >= 2, "{errors}");
    assert!(errors.contains("It was spawned at ch05-runtime/src/"), "{errors}");
    Ok(())
}

#[test]
fn trace_prints_every_step_of_every_task() -> io::Result<()> {
    let out = stdout(&run(&["--trace"])?);
    for needle in [
        "ms  spawned",
        "polled on main",
        "ms  pending",
        "woken by the reactor (I/O)",
        "woken by the reactor (a timer)",
        "woken by task ",
        "woken by thread ",
        "ms  ready",
        "panicked: deliberately, to show JoinError (caught; the runtime carries on)",
        "aborted: its future was dropped",
        "polled on worker-",
    ] {
        position(&out, needle);
    }
    Ok(())
}

/// Well-formed XML, checked by hand (no crates): every tag closes in order,
/// attributes are quoted, text holds no raw `<` or stray `&`.
fn check_xml(xml: &str) -> Result<usize, String> {
    let mut open: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = xml.strip_prefix("<?xml").and_then(|r| r.split_once("?>")).map_or(xml, |(_, r)| r);
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        if text.contains('>')
            || text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").replace("&quot;", "").contains('&')
        {
            return Err(format!("bad text {text:?}"));
        }
        let end = rest[start..].find('>').ok_or("a tag that never ends")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(last) if last == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name = body.split_whitespace().next().ok_or("an empty tag")?.to_string();
        if !body.matches('"').count().is_multiple_of(2) || body.contains('<') {
            return Err(format!("bad attributes in <{body}>"));
        }
        elements += 1;
        if !self_closing {
            open.push(name);
        }
    }
    if open.is_empty() { Ok(elements) } else { Err(format!("never closed: {open:?}")) }
}

#[test]
fn trace_svg_writes_a_well_formed_timeline_with_a_row_per_task() -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("ch05-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("timeline.svg");
    let out = stdout(&run(&["--trace-svg", file.to_str().expect("a UTF-8 temp path")])?);
    let svg = std::fs::read_to_string(&file)?;
    std::fs::remove_dir_all(&dir)?;
    let elements = check_xml(&svg).map_err(io::Error::other)?;
    assert!(elements > 100, "{elements} elements");
    // "wrote FILE: N task(s), …": one row per task.
    let tasks: usize = out
        .lines()
        .find(|line| line.contains("wrote ") && line.contains(" task(s), "))
        .and_then(|line| line.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'wrote' line in:\n{out}"));
    assert_eq!(svg.matches("<g class=\"task\"").count(), tasks);
    for legend in ["queued (woken", "running (being polled)", "waiting (Pending", "woken by a timer", "ms since"] {
        assert!(svg.contains(legend), "missing {legend:?}");
    }
    Ok(())
}

#[test]
fn the_xml_check_catches_what_it_should() {
    assert_eq!(check_xml("<a><b x=\"1\"/><c>t &amp; u</c></a>"), Ok(3));
    assert!(check_xml("<a><b></a></b>").is_err());
    assert!(check_xml("<a>1 < 2</a>").is_err());
    assert!(check_xml("<a>fish & chips</a>").is_err());
    assert!(check_xml("<a x=\"1></a>").is_err());
    assert!(check_xml("<a>").is_err());
}

/// Starts `serve` and reads the address from its first line.
fn serve(args: &[&str]) -> io::Result<(Child, SocketAddr)> {
    let mut child = Command::new(BIN).arg("serve").args(args).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).map_err(io::Error::other)?;
    let addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no address in {first:?}")))?;
    Ok((child, addr))
}

#[test]
fn serve_runs_the_async_server() -> io::Result<()> {
    let (mut child, addr) = serve(&["--port", "0", "--max-connections", "3"])?;
    let answer = ch01_os_threads::client::get(addr, &ch01_os_threads::http::path(10, "async hello"));
    child.kill()?;
    child.wait()?;
    assert_eq!(answer?.body, "async hello");
    Ok(())
}

/// A mistake prints one line on stderr (no backtrace, even when asked for
/// one) and exits with 1.
fn one_line_error(args: &[&str], expected: &str) -> io::Result<()> {
    let output = Command::new(BIN).args(args).env("RUST_BACKTRACE", "1").output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{args:?}: {stderr}");
    Ok(())
}

#[test]
fn help_and_mistakes() -> io::Result<()> {
    let help = stdout(&run(&["--help"])?);
    for command in ["--trace", "--trace-svg FILE", "serve [OPTIONS]", "bench", "DELAY_SERVER"] {
        assert!(help.contains(command), "--help lacks {command}");
    }
    one_line_error(&["nonsense"], "unknown command \"nonsense\"")?;
    one_line_error(&["--trace-svg"], "--trace-svg takes one file name")?;
    one_line_error(&["serve", "--port", "http"], "--port takes a number from 0 to 65535")?;
    one_line_error(&["bench", "--fast"], "bench takes no arguments but --quick")?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    one_line_error(&["serve", "--port", &port], "cannot listen on 127.0.0.1:")?;
    Ok(())
}

#[test]
fn a_quick_bench_fills_its_table() -> io::Result<()> {
    let out = stdout(&run(&["bench", "--quick"])?);
    for row in [
        "spawn + complete, per task",
        "yield: one wake + poll",
        "ping-pong over a channel",
        "tasks sleeping",
        "memory per sleeping task",
        "GETs at once",
        "CPU time",
        "listen overflows",
    ] {
        let line = out.lines().find(|line| line.contains(row) && line.contains(" | "));
        let line = line.unwrap_or_else(|| panic!("no row {row:?} in:\n{out}"));
        assert_eq!(line.matches(" | ").count(), 4, "{line}");
    }
    assert!(out.contains("(ch05-runtime) at 127.0.0.1") || out.contains("child process"), "{out}");
    Ok(())
}
