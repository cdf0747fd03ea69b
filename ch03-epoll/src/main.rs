//! # Chapter 3: syscalls and the OS event queue, from raw epoll to mio
//!
//! Run it: `cargo run -p ch03-epoll`
//!
//! The demo starts its own delay server on 127.0.0.1 and then shows, with a
//! timestamp on every line:
//!
//! 1. one `write` syscall made three ways: inline assembly, `libc`, and a
//!    hand-declared `extern "C"` function;
//! 2. ten requests with descending delays on ONE thread, registered with
//!    epoll edge-triggered and answered out of order as the events arrive
//!    (token, flags and bytes of every event);
//! 3. level- vs edge-triggered side by side, with a reader that does not
//!    drain the buffer;
//! 4. `EPOLLONESHOT`, which needs re-arming after every event;
//! 5. a regular file, which epoll refuses: not all I/O blocks;
//! 6. the same ten requests through mio.
//!
//! Other commands: `bench` (one epoll thread vs one thread per request vs
//! mio; use `--release`), `--help`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config, DemoServer};
use ch01_os_threads::{http, report, say, trace};
use ch03_epoll::bench::{self, BenchServer, ChildServer};
use ch03_epoll::http_get::{Step, StepOutcome};
use ch03_epoll::poll::{Events, Interest, Poll, Token};
use ch03_epoll::{client, mio_client, syscall};

const HELP: &str = "\
ch03-epoll: syscalls and the OS event queue, from raw epoll to mio

USAGE:
    cargo run -p ch03-epoll                      the guided demo
    cargo run --release -p ch03-epoll -- bench   N concurrent requests: one epoll thread
                                                 vs one thread per request vs mio
    cargo run -p ch03-epoll -- --help            this text

BENCH OPTIONS:
    --sizes 100,1000     which N to run (default 100,1000,10000)
    --delay-ms 500       how long the server waits before each answer (default 500)

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of starting one
                             (the demo and the bench)
";

/// How long the demo waits for all its answers before giving up.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the level/edge/oneshot demos wait to show "no event": long
/// enough to be sure nothing is coming, short enough not to bore anyone.
const NOTHING_COMES: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    trace::start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => demo(),
        Some("bench") => run_bench(&args[1..]),
        Some(bench::SERVE_FOR_BENCH) => Ok(bench::serve_for_bench(bench::server_config())?),
        Some(bench::RUN_ONE) => bench_run_one(&args[1..]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

fn demo() -> anyhow::Result<()> {
    let server = DemoServer::from_env_or_start(Config::default()).context("starting the delay server")?;
    say!("main", "{}", server.describe());

    println!("\n--- 1. one syscall, write(1, ...), three ways ---");
    three_writes().context("writing to stdout")?;

    println!("\n--- 2. ten requests, one thread, epoll (edge-triggered) ---");
    let paths = ten_paths();
    // (The closures only turn each generic `get_all` into the one `GetAll` type.)
    let epoll_order = ten_requests(server.addr(), &paths, "epoll", |addr, paths, timeout, observe| {
        client::get_all(addr, paths, timeout, observe)
    })?;

    println!("\n--- 3. level- vs edge-triggered, reader takes 2 bytes per event ---");
    level_vs_edge().context("level vs edge")?;

    println!("\n--- 4. EPOLLONESHOT: one event, then re-arm ---");
    oneshot().context("oneshot")?;

    println!("\n--- 5. a regular file ---");
    regular_file().context("regular file")?;

    println!("\n--- 6. the same ten requests through mio ---");
    let mio_order = ten_requests(server.addr(), &paths, "mio", |addr, paths, timeout, observe| {
        mio_client::get_all(addr, paths, timeout, observe)
    })?;
    if mio_order == epoll_order {
        say!("main", "same answers in the same order as our epoll client: the API shape carried over");
    } else {
        say!(
            "main",
            "same answers; the order differs a little from the epoll run ({epoll_order:?}): \
             the server's threads woke in a different order"
        );
    }
    Ok(())
}

// ANCHOR: three_writes
/// Section 1: each way writes a trace line straight to fd 1, bypassing
/// Rust's `println!` machinery.
fn three_writes() -> io::Result<()> {
    // Everything printed so far must be out before we write around Rust's
    // stdout buffer, or the lines would come out of order.
    io::stdout().flush()?;
    let stdout = io::stdout();
    for (how, write) in syscall::WAYS {
        let line = format!("{}\n", trace::line("syscall", &format!("this line was written by {how}")));
        let written = write(stdout.as_fd(), line.as_bytes())?;
        say!("main", "  the kernel took {written} of {} bytes", line.len());
    }
    Ok(())
}
// ANCHOR_END: three_writes

/// The delays of section 2's ten requests: 500, 450, ..., 50 ms, asked for
/// in that order, so they are answered in the reverse order.
const DELAYS_MS: [u64; 10] = [500, 450, 400, 350, 300, 250, 200, 150, 100, 50];

/// Request `i` asks for `DELAYS_MS[i]` and the body `answer i`.
fn ten_paths() -> Vec<String> {
    DELAYS_MS.iter().enumerate().map(|(i, &delay)| http::path(delay, &format!("answer {i}"))).collect()
}

/// A client's `get_all`, with the observer as a trait object so both clients fit one type.
type GetAll = fn(SocketAddr, &[String], Duration, &mut dyn FnMut(&Step)) -> io::Result<Vec<io::Result<http::Response>>>;

/// Sections 2 and 6: runs one of the clients, printing every event it
/// handles. Returns the order in which the answers came.
fn ten_requests(addr: SocketAddr, paths: &[String], component: &str, get_all: GetAll) -> anyhow::Result<Vec<usize>> {
    if component == "epoll" {
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::EDGE | Interest::RDHUP;
        say!("main", "every socket is registered once, token = request number, interest {interest}");
    } else {
        say!("main", "mio registers READABLE | WRITABLE, always edge-triggered; its events speak portable words");
    }
    let started = Instant::now();
    let mut order = Vec::new();
    let results = get_all(addr, paths, DEMO_TIMEOUT, &mut |step: &Step| {
        say!(component, "{step}");
        if matches!(step.outcome, StepOutcome::Answered(_)) {
            order.push(step.token);
        }
    })
    .with_context(|| format!("{component}: the event loop failed"))?;
    let took = started.elapsed();
    let bodies: Vec<String> = results
        .into_iter()
        .map(|r| r.and_then(http::Response::into_ok_body))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{component}: a request failed"))?;
    // Each result sits at its request's index, whatever order the answers came in.
    for (i, body) in bodies.iter().enumerate() {
        if *body != format!("answer {i}") {
            bail!("{component}: request {i} got the body {body:?}");
        }
    }
    let longest = DELAYS_MS.iter().max().copied().unwrap_or(0);
    let sum: u64 = DELAYS_MS.iter().sum();
    say!(
        "main",
        "{} answers in {} ms on one thread: about the LONGEST delay ({longest} ms), not the sum ({sum} ms)",
        bodies.len(),
        took.as_millis()
    );
    say!("main", "answered in token order {order:?}: whoever was ready first");
    Ok(order)
}

// ANCHOR: level_vs_edge
/// Section 3: the same 10 bytes sent to two sockets, one registered
/// level-triggered, one edge-triggered. Each event, the reader takes only 2.
fn level_vs_edge() -> io::Result<()> {
    const LEVEL: Token = Token(0);
    const EDGE: Token = Token(1);
    let mut poll = Poll::new()?;
    let (mut level_writer, mut level_reader) = UnixStream::pair()?;
    let (mut edge_writer, mut edge_reader) = UnixStream::pair()?;
    level_reader.set_nonblocking(true)?;
    edge_reader.set_nonblocking(true)?;
    poll.registry().register(&level_reader, LEVEL, Interest::READABLE)?;
    poll.registry().register(&edge_reader, EDGE, Interest::READABLE | Interest::EDGE)?;
    say!("main", "token 0 level: {}", Interest::READABLE);
    say!("main", "token 1 edge:  {}", Interest::READABLE | Interest::EDGE);

    level_writer.write_all(b"0123456789")?;
    edge_writer.write_all(b"0123456789")?;
    let mut unread = [10usize, 10];
    let mut events = Events::with_capacity(4);
    for round in 1..=3 {
        poll.poll(&mut events, Some(NOTHING_COMES))?;
        let mut reported = [false, false];
        for event in events.iter() {
            let Token(i) = event.token();
            reported[i] = true;
            let reader = if event.token() == LEVEL { &mut level_reader } else { &mut edge_reader };
            let mut two = [0u8; 2];
            reader.read_exact(&mut two)?; // deliberately NOT draining
            unread[i] -= 2;
            say!("epoll", "round {round}: token {i} {}  read 2 bytes, {} left", event.flags().names(), unread[i]);
        }
        if !reported[1] {
            say!("epoll", "round {round}: token 1 silent, {} bytes unread: no new edge, no event", unread[1]);
        }
    }
    say!("main", "level-triggered reports again while data remains; edge-triggered reported once");

    // Without the level-triggered socket to wake us, the edge-triggered
    // reader sleeps with 8 bytes in its buffer: only the timeout ends it.
    poll.registry().deregister(&level_reader)?;
    let started = Instant::now();
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!(
        "epoll",
        "edge alone: {} event(s) after waiting {} ms, {} bytes still unread",
        events.len(),
        started.elapsed().as_millis(),
        unread[1]
    );

    // More data is a new edge, although the old bytes were never read: the
    // kernel reports each arrival, it never looks at what is already there.
    let more = b"ab";
    edge_writer.write_all(more)?;
    unread[1] += more.len();
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!(
        "epoll",
        "{} more bytes arrive: {} event(s), though the buffer never went empty ({} bytes unread)",
        more.len(),
        events.len(),
        unread[1]
    );
    say!("main", "an edge-triggered reader must read until WouldBlock: what it leaves is not reported again");
    say!("main", "until more data arrives, and if none is coming (without a timeout) it waits forever");
    Ok(())
}
// ANCHOR_END: level_vs_edge

// ANCHOR: oneshot
/// Section 4: a oneshot registration fires once, then stays quiet until it
/// is re-armed with `reregister`.
fn oneshot() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let (mut writer, reader) = UnixStream::pair()?;
    let interest = Interest::READABLE | Interest::ONESHOT;
    poll.registry().register(&reader, Token(7), interest)?;
    say!("main", "token 7 registered with {interest}");
    let mut events = Events::with_capacity(4);

    writer.write_all(b"ping")?;
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!("epoll", "after the 1st write: {} event(s) {:?}", events.len(), events);

    writer.write_all(b"ping")?;
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!("epoll", "after the 2nd write: {} event(s): disarmed, data waits unreported", events.len());

    poll.registry().reregister(&reader, Token(7), interest)?;
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!("epoll", "after reregister:    {} event(s) {:?}", events.len(), events);
    Ok(())
}
// ANCHOR_END: oneshot

// ANCHOR: regular_file
/// Section 5: epoll refuses regular files.
fn regular_file() -> io::Result<()> {
    // Our own executable: a regular file that certainly exists.
    let path = std::env::current_exe()?;
    let mut file = File::open(&path)?;
    let poll = Poll::new()?;
    match poll.registry().register(&file, Token(0), Interest::READABLE) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            say!("epoll", "epoll_ctl(ADD, our own executable file) refused: {e}");
        }
        other => say!("epoll", "unexpected answer from epoll_ctl for {}: {other:?}", path.display()),
    }
    let started = Instant::now();
    let mut start_of_file = [0u8; 4096];
    let read = file.read(&mut start_of_file)?;
    say!("main", "regular files are always ready — not all I/O blocks: a read is served from");
    say!("main", "the page cache (RAM) or waits for the disk inside the syscall; there is no");
    say!(
        "main",
        "\"wait until ready\" to register for. This read of {read} bytes took {} µs.",
        started.elapsed().as_micros()
    );
    Ok(())
}
// ANCHOR_END: regular_file

/// `bench`: starts (or finds) a delay server big enough, then measures.
fn run_bench(args: &[String]) -> anyhow::Result<()> {
    let mut sizes = vec![100, 1_000, 10_000];
    let mut delay_ms = bench::DELAY_MS;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().with_context(|| format!("{flag} needs a value\n\n{HELP}"))?;
        match flag.as_str() {
            "--sizes" => {
                sizes = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().with_context(|| format!("--sizes: {n:?} is not a number")))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--delay-ms" => {
                delay_ms = value.parse().with_context(|| format!("--delay-ms: {value:?} is not a number"))?
            }
            _ => bail!("unknown bench option {flag:?}\n\n{HELP}"),
        }
    }
    let soft = ch03_epoll::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    say!(
        "bench",
        "open-file limit (RLIMIT_NOFILE) soft limit raised to the hard limit, {soft}, here and in each child"
    );
    for &n in &sizes {
        // One socket (one fd) per request, plus a few the process already has open.
        if n as u64 + 64 > soft {
            say!("bench", "N = {n} does not fit under that limit: expect failed requests (raise `ulimit -Hn`)");
        }
    }

    // The server runs in a child process (this same binary, re-executed), so
    // its threads and sockets do not count against the clients' limits and
    // its CPU time and memory do not show up in the clients' numbers.
    let external = std::env::var(DemoServer::ENV).ok().filter(|v| !v.trim().is_empty());
    let child;
    let server = match external {
        Some(value) => {
            let addr: SocketAddr = value.trim().parse().with_context(|| format!("{}={value:?}", DemoServer::ENV))?;
            say!("bench", "using the delay server at {addr} (from {})", DemoServer::ENV);
            BenchServer { addr, max_connections: None }
        }
        None => {
            child = ChildServer::start().context("starting the delay server in a child process")?;
            say!("bench", "delay server in child process {} at {}", child.id(), child.addr());
            BenchServer { addr: child.addr(), max_connections: Some(bench::SERVER_MAX_CONNECTIONS) }
        }
    };
    println!();
    println!("{}", report::machine());
    let table = bench::table(&server, &sizes, delay_ms, &mut run_in_child, |line| say!("bench", "{line}"))
        .context("running the bench")?;
    println!("{table}");
    Ok(())
}

/// One measured run in a fresh process of its own, so that its peak RSS and
/// CPU time are its own and nothing an earlier run left behind (freed memory
/// the allocator keeps, cached thread stacks) is counted.
fn run_in_child(approach: bench::Approach, addr: SocketAddr, n: usize, delay_ms: u64) -> io::Result<bench::Sample> {
    let exe = std::env::current_exe()?;
    let output = Command::new(exe)
        .args([bench::RUN_ONE, approach.id(), &n.to_string(), &delay_ms.to_string(), &addr.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "the {} run for N = {n} failed ({}): {stdout}",
            approach.id(),
            output.status
        )));
    }
    bench::Sample::from_line(stdout.lines().last().unwrap_or_default())
}

/// The hidden `bench-run APPROACH N DELAY_MS ADDR` subcommand: one run,
/// printed as one line for the parent to read.
fn bench_run_one(args: &[String]) -> anyhow::Result<()> {
    let [approach, n, delay_ms, addr] = args else { bail!("usage: {} APPROACH N DELAY_MS ADDR", bench::RUN_ONE) };
    let approach = bench::Approach::from_id(approach).with_context(|| format!("no approach {approach:?}"))?;
    let n: usize = n.parse().with_context(|| format!("N {n:?}"))?;
    let delay_ms: u64 = delay_ms.parse().with_context(|| format!("delay {delay_ms:?}"))?;
    let addr: SocketAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
    ch03_epoll::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let sample = bench::run(approach, addr, n, delay_ms).context("the measured run")?;
    println!("{}", sample.to_line());
    Ok(())
}
