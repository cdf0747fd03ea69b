//! # Chapter 3: syscalls and the OS event queue, from raw epoll to mio
//!
//! Run it: `cargo run -p ch03-epoll`
//!
//! The demo starts its own delay server on 127.0.0.1 and then shows, with a
//! timestamp on every line:
//!
//! 1. one `write` syscall made three ways: inline assembly, `libc`, and a
//!    hand-declared `extern "C"` function;
//! 2. requests with descending delays on ONE thread, registered with
//!    epoll edge-triggered and answered out of order as the events arrive
//!    (token, flags and bytes of every event);
//! 3. level- vs edge-triggered side by side, with a reader that does not
//!    drain the buffer;
//! 4. `EPOLLONESHOT`, which needs re-arming after every event;
//! 5. a regular file, which epoll refuses: not all I/O blocks;
//! 6. the same requests through mio;
//! 7. the other model, completion: io_uring's two rings driven by hand
//!    (a batch of NOPs in one system call, a pipe READ that completes when
//!    the other end writes, a TIMEOUT, an ASYNC_CANCEL);
//! 8. the same requests as completions, and the system calls each model
//!    made for them.
//!
//! Where io_uring is not available (no kernel support, or refused by
//! `kernel.io_uring_disabled` or a seccomp filter), sections 7 and 8 say
//! so in one line and the demo ends normally.
//!
//! Other commands: `bench` (one epoll thread vs io_uring vs one thread per
//! request vs mio; use `--release`), `--help`.

mod bench;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config, DemoServer};
use ch01_os_threads::trace::section;
use ch01_os_threads::{bench_kit, cli, http, say, trace};
use ch03_epoll::counting::{self, Syscall, Syscalls};
use ch03_epoll::http_get::{Step, StepOutcome};
use ch03_epoll::poll::{Events, Interest, Poll, Token};
use ch03_epoll::uring::{Completion, KernelTimespec, Ring, Sqe, Unavailable};
use ch03_epoll::uring_client::{self, Seen};
use ch03_epoll::{client, mio_client, syscall};

const HELP: &str = "\
ch03-epoll: syscalls and the OS event queue, from raw epoll to mio

USAGE:
    cargo run -p ch03-epoll [-- COMMAND]

COMMANDS:
    (none)     the guided demo: one syscall three ways, many requests on one
               thread with epoll, level vs edge, oneshot, a regular file, mio,
               then io_uring by hand and the same requests as completions
    bench      N concurrent requests: one epoll thread vs io_uring vs one
               thread per request vs mio (use --release; options below)
    --help     this text

BENCH OPTIONS:
    --sizes 100,1000     which N to run (default 100,1000,10000)
    --delay-ms 500       how long the server waits before each answer (default 500)
    --json               one JSON object per figure and line instead of the table

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
                             (the demo and the bench)
";

/// How long the demo waits for all its answers before giving up.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the level/edge/oneshot demos wait to show "no event": long
/// enough to be sure nothing is coming, short enough not to bore anyone.
const NOTHING_COMES: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    trace::start();
    cli::quiet_closed_pipes();
    cli::exit_code(run(std::env::args().skip(1).collect()))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(),
        Some("bench") => bench::bench(&args[1..]),
        // Hidden: the bench runs this binary again for its server and its runs.
        Some(bench_kit::SERVE) => Ok(bench_kit::serve_delay_server()?),
        Some(bench_kit::RUN) => bench::run_one(&args[1..]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(cli::unknown("command", other)),
    }
}

fn demo() -> anyhow::Result<()> {
    let server = DemoServer::from_env_or_start(Config::default()).context("starting the delay server")?;
    say!("main", "{}", server.describe());

    section(1, &format!("one syscall, write(1, ...), {} ways", syscall::WAYS.len()));
    three_writes().context("writing to stdout")?;

    let paths = demo_paths();
    section(2, &format!("{} requests, one thread, epoll", paths.len()));
    // (The closures only turn each generic `get_all` into the one `GetAll` type.)
    let (epoll_order, epoll_calls) = many_requests(server.addr(), &paths, "epoll", |addr, paths, timeout, observe| {
        client::get_all(addr, paths, timeout, observe)
    })?;

    section(3, &format!("level- vs edge-triggered, reader takes {TAKE} bytes per event"));
    level_vs_edge().context("level vs edge")?;

    section(4, "EPOLLONESHOT: one event, then re-arm");
    oneshot().context("oneshot")?;

    section(5, "a regular file");
    regular_file().context("regular file")?;

    section(6, &format!("the same {} requests through mio", paths.len()));
    let (mio_order, _) = many_requests(server.addr(), &paths, "mio", |addr, paths, timeout, observe| {
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

    section(7, "completion instead of readiness: io_uring's rings by hand");
    let mut ring = match Ring::new(DEMO_RING) {
        Ok(ring) => ring,
        Err(e) => match Unavailable::from_error(&e) {
            Some(why) => {
                say!("uring", "io_uring is not available here ({why}): skipping sections 7 and 8");
                return Ok(());
            }
            None => return Err(e).context("io_uring_setup"),
        },
    };
    rings_by_hand(&mut ring).context("io_uring by hand")?;

    section(8, &format!("the same {} requests as completions", paths.len()));
    uring_requests(server.addr(), &paths, epoll_calls)
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

/// The delays of section 2's requests: 500, 450, ..., 50 ms, asked for in
/// that order, so they are answered in the reverse order.
const DELAYS_MS: &[u64] = &[500, 450, 400, 350, 300, 250, 200, 150, 100, 50];

/// Request `i` asks for `DELAYS_MS[i]` and the body `answer i`.
fn demo_paths() -> Vec<String> {
    DELAYS_MS.iter().enumerate().map(|(i, &delay)| http::path(delay, &format!("answer {i}"))).collect()
}

/// A client's `get_all`, with the observer as a trait object so both clients fit one type.
type GetAll = fn(SocketAddr, &[String], Duration, &mut dyn FnMut(&Step)) -> io::Result<Vec<io::Result<http::Response>>>;

/// Sections 2 and 6: runs one of the clients, printing every event it
/// handles. Returns the order in which the answers came, and the system
/// calls it made (counted for our epoll client only: mio's are its own).
fn many_requests(
    addr: SocketAddr,
    paths: &[String],
    component: &str,
    get_all: GetAll,
) -> anyhow::Result<(Vec<usize>, Syscalls)> {
    // The interest each client really registers, from its own constant.
    if component == "epoll" {
        say!("main", "every socket is registered once, token = request number, interest {}", client::INTEREST);
    } else {
        let interest = mio_client::INTEREST;
        say!("main", "mio registers {interest:?}, always edge-triggered; its events speak portable words");
    }
    let (before, started) = (counting::snapshot(), Instant::now());
    let mut order = Vec::new();
    let results = get_all(addr, paths, DEMO_TIMEOUT, &mut |step: &Step| {
        say!(component, "{step}");
        if matches!(step.outcome, StepOutcome::Answered(_)) {
            order.push(step.token);
        }
    })
    .with_context(|| format!("{component}: the event loop failed"))?;
    let (took, calls) = (started.elapsed(), counting::snapshot() - before);
    check_answers(component, results, took, &order)?;
    Ok((order, calls))
}

/// Checks that every request got its own answer (`answer i` for request
/// `i`), and says how long they took and in which order they came.
fn check_answers(
    component: &str,
    results: Vec<io::Result<http::Response>>,
    took: Duration,
    order: &[usize],
) -> anyhow::Result<()> {
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
    Ok(())
}

// ANCHOR: level_vs_edge
/// How many bytes section 3 sends to each socket.
const SENT: &[u8] = b"0123456789";
/// How many bytes section 3's reader takes per event.
const TAKE: usize = 2;

/// Section 3: the same bytes sent to two sockets, one registered
/// level-triggered, one edge-triggered. Each event, the reader takes only
/// [`TAKE`] of them.
fn level_vs_edge() -> io::Result<()> {
    const LEVEL: Token = Token(0);
    const EDGE: Token = Token(1);
    const ROUNDS: usize = 3;
    let mut poll = Poll::new()?;
    let (mut level_writer, mut level_reader) = UnixStream::pair()?;
    let (mut edge_writer, mut edge_reader) = UnixStream::pair()?;
    level_reader.set_nonblocking(true)?;
    edge_reader.set_nonblocking(true)?;
    poll.registry().register(&level_reader, LEVEL, Interest::READABLE)?;
    poll.registry().register(&edge_reader, EDGE, Interest::READABLE | Interest::EDGE)?;
    say!("main", "token {} level: {}", LEVEL.0, Interest::READABLE);
    say!("main", "token {} edge:  {}", EDGE.0, Interest::READABLE | Interest::EDGE);

    level_writer.write_all(SENT)?;
    edge_writer.write_all(SENT)?;
    let mut unread = [SENT.len(), SENT.len()];
    let mut reports = [0, 0];
    let mut events = Events::with_capacity(4);
    for round in 1..=ROUNDS {
        poll.poll(&mut events, Some(NOTHING_COMES))?;
        let mut reported = [false, false];
        for event in events.iter() {
            let Token(i) = event.token();
            reported[i] = true;
            reports[i] += 1;
            let reader = if event.token() == LEVEL { &mut level_reader } else { &mut edge_reader };
            let mut some = vec![0u8; TAKE.min(unread[i])];
            reader.read_exact(&mut some)?; // deliberately NOT draining
            unread[i] -= some.len();
            let flags = event.flags().names();
            say!("epoll", "round {round}: token {i} {flags}  read {} bytes, {} left", some.len(), unread[i]);
        }
        for (i, token) in [LEVEL, EDGE].into_iter().enumerate() {
            if !reported[i] {
                say!("epoll", "round {round}: token {} silent, {} bytes unread: no event", token.0, unread[i]);
            }
        }
    }
    let [level, edge] = reports;
    say!("main", "in {ROUNDS} rounds, level-triggered reported {level} time(s), edge-triggered {edge}");

    // Without the level-triggered socket to wake us, the edge-triggered
    // reader sleeps with bytes in its buffer: only the timeout ends it.
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
    const TOKEN: Token = Token(7);
    let interest = Interest::READABLE | Interest::ONESHOT;
    poll.registry().register(&reader, TOKEN, interest)?;
    say!("main", "token {} registered with {interest}", TOKEN.0);
    let mut events = Events::with_capacity(4);

    writer.write_all(b"ping")?;
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    say!("epoll", "after the 1st write: {} event(s) {:?}", events.len(), events);

    writer.write_all(b"ping")?;
    poll.poll(&mut events, Some(NOTHING_COMES))?;
    let meaning = if events.is_empty() { "disarmed, data waits unreported" } else { "still armed" };
    say!("epoll", "after the 2nd write: {} event(s): {meaning}", events.len());

    poll.registry().reregister(&reader, TOKEN, interest)?;
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

/// How many NOPs section 7 hands the kernel in one `io_uring_enter`
/// (their `user_data` is 0, 1, ...).
const NOPS: u64 = 8;

/// The ring section 7 uses: an SQ with room for the whole batch of NOPs.
const DEMO_RING: u32 = NOPS as u32;

/// The `user_data` of section 7's other operations, so each completion
/// says which operation it is.
const READ: u64 = 100;
const WRITE: u64 = 101;
const TIMER: u64 = 102;
const CANCEL: u64 = 103;

/// How long section 7's TIMEOUT waits.
const TIMER_MS: u64 = 20;

/// The name of one of section 7's operations, by its `user_data`.
fn operation(user_data: u64) -> &'static str {
    match user_data {
        READ => "READ",
        WRITE => "WRITE",
        TIMER => "TIMEOUT",
        CANCEL => "ASYNC_CANCEL",
        _ => "NOP",
    }
}

/// A completion as `READ -> 11` or `TIMEOUT -> -62 (Timer expired)`.
fn describe(done: &Completion) -> String {
    match done.result() {
        Ok(n) => format!("{} -> {n}", operation(done.user_data)),
        Err(e) => format!("{} -> {} ({})", operation(done.user_data), done.res, errno_text(&e)),
    }
}

/// `Timer expired` from `Timer expired (os error 62)`.
fn errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or_default().to_string()
}

/// Takes every completion that is ready.
fn take_all(ring: &mut Ring) -> io::Result<Vec<Completion>> {
    let mut taken = Vec::new();
    while let Some(done) = ring.completion()? {
        taken.push(done);
    }
    Ok(taken)
}

// ANCHOR: rings_by_hand
/// Section 7: io_uring's operations one at a time, on a pipe, so that each
/// step is visible: batching, a read the kernel completes later into our
/// buffer, a timer, a cancellation.
fn rings_by_hand(ring: &mut Ring) -> io::Result<()> {
    say!(
        "uring",
        "a ring with {} SQ entries and {} CQ entries, mapped into our memory",
        ring.sq_entries(),
        ring.cq_entries()
    );

    // Batching: many operations, one system call.
    for nop in 0..NOPS {
        // SAFETY: a NOP carries no address.
        unsafe { ring.push(&Sqe::nop(nop)) }?;
    }
    let before = counting::snapshot();
    let submitted = ring.submit_and_wait(NOPS as u32)?;
    let enters = (counting::snapshot() - before).of(Syscall::IoUringEnter);
    let done = take_all(ring)?;
    say!(
        "uring",
        "{NOPS} NOPs pushed, then submit_and_wait({NOPS}): {enters} io_uring_enter submitted {submitted} and waited for {} completions",
        done.len()
    );

    // A read the kernel completes later, into our buffer.
    let (reader, writer) = io::pipe()?;
    let mut buffer = vec![0u8; 64];
    let read = Sqe::read(reader.as_fd(), buffer.as_mut_ptr(), buffer.len(), READ);
    // SAFETY: `buffer` is neither touched nor dropped until the READ's
    // completion is taken below (and if an error returns early, `ring` is
    // dropped before `buffer`, and its Drop waits for the READ).
    unsafe { ring.push(&read) }?;
    ring.submit()?;
    let early = ring.completion()?.map_or("none".to_string(), |done| describe(&done));
    say!(
        "uring",
        "READ of an empty pipe submitted; completions now: {early}. The kernel holds the read, and our {}-byte buffer",
        buffer.len()
    );
    let message = b"hello, ring";
    // SAFETY: `message` is a static byte string.
    unsafe { ring.push(&Sqe::write(writer.as_fd(), message.as_ptr(), message.len(), WRITE)) }?;
    ring.submit_and_wait(2)?;
    let done = take_all(ring)?;
    let described: Vec<String> = done.iter().map(describe).collect();
    say!("uring", "WRITE of {} bytes to the other end submitted; completions: {}", message.len(), described.join(", "));
    let read_bytes = done.iter().find(|done| done.user_data == READ).map_or(Ok(0), Completion::result)? as usize;
    let text = String::from_utf8_lossy(&buffer[..read_bytes]);
    say!("uring", "the buffer now holds {text:?}: the kernel wrote it there after io_uring_enter had returned");

    // A timer is an operation too.
    let after = KernelTimespec::from_duration(Duration::from_millis(TIMER_MS));
    let started = Instant::now();
    // SAFETY: `after` lives until the TIMEOUT's completion is taken below.
    unsafe { ring.push(&Sqe::timeout(&after, TIMER)) }?;
    ring.submit_and_wait(1)?;
    let expired = ring.completion()?.map_or("none".to_string(), |done| describe(&done));
    say!(
        "uring",
        "TIMEOUT of {TIMER_MS} ms submitted; completion after {} ms: {expired}",
        started.elapsed().as_millis()
    );

    // Cancelling: the operation ends with its own completion, -ECANCELED.
    let read = Sqe::read(reader.as_fd(), buffer.as_mut_ptr(), buffer.len(), READ);
    // SAFETY: as for the first READ.
    unsafe { ring.push(&read) }?;
    ring.submit()?;
    // SAFETY: an ASYNC_CANCEL carries no address.
    unsafe { ring.push(&Sqe::cancel(READ, CANCEL)) }?;
    ring.submit_and_wait(2)?;
    let done: Vec<String> = take_all(ring)?.iter().map(describe).collect();
    say!("uring", "another READ of the empty pipe, then ASYNC_CANCEL of it: {}", done.join(", "));
    say!("uring", "only now, with the READ's completion taken, may its buffer be reused or freed");
    Ok(())
}
// ANCHOR_END: rings_by_hand

/// Section 8: the same requests as section 2, as completions, and the
/// system calls each model needed for them.
fn uring_requests(addr: SocketAddr, paths: &[String], epoll_calls: Syscalls) -> anyhow::Result<()> {
    say!("main", "each request: CONNECT, SEND, then RECV until end of file, one operation in flight at a time");
    say!("main", "nothing is registered and nothing is \"ready\": the loop hears of finished operations only");
    let (before, started) = (counting::snapshot(), Instant::now());
    let mut order = Vec::new();
    let results = uring_client::get_all(addr, paths, DEMO_TIMEOUT, |seen| match seen {
        Seen::Entered { submitted, ready } => {
            say!("uring", "io_uring_enter: submitted {submitted} operation(s), {ready} completion(s) ready");
        }
        Seen::Completed(step) => {
            say!("uring", "{step}");
            if matches!(step.outcome, StepOutcome::Answered(_)) {
                order.push(step.token);
            }
        }
    })
    .context("io_uring: the completion loop failed")?;
    let (took, uring_calls) = (started.elapsed(), counting::snapshot() - before);
    check_answers("io_uring", results, took, &order)?;
    say!("main", "system calls for the same {} requests (counted where the clients make them):", paths.len());
    say!("main", "  epoll:    {epoll_calls}");
    say!("main", "  io_uring: {uring_calls}");
    Ok(())
}
