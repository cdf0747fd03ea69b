//! Chapter 5: a reactor/executor runtime on `std`'s `Future` and `Waker`.
//!
//! `cargo run -p ch05-runtime` runs the guided demo against an embedded
//! delay server (or the one in `DELAY_SERVER=host:port`):
//!
//! 1. five GETs at once, one task each: every poll → wait → wake of the
//!    executor and the reactor is printed;
//! 2. timers: a `sleep`, and a `timeout` that fires and drops its GET;
//! 3. a task that panics and a task that is aborted, both reported by
//!    their `JoinHandle`, while the runtime carries on;
//! 4. `spawn_blocking` reading a regular file, which `epoll` refuses;
//! 5. a channel: one task wakes another;
//! 6. the same five GETs on a runtime that waits in its own reactor (tokio's
//!    design), then on the multi-threaded executor;
//! 7. loose coupling: our leaf futures on a 15-line executor, and a
//!    `std`-only future on ours;
//! 8. who gets the CPU: a busy task beside a timer and a GET, with the
//!    fairness rules off and on, and a poll that computes too long;
//! 9. completion I/O: the same GETs on an io_uring driver, a read that
//!    hands its buffer back, and a dropped read whose buffer the driver
//!    keeps until the kernel lets go of it.
//!
//! `--trace` adds every task's timeline; `--trace-svg FILE` draws it.
//! `serve` runs the async delay server; `bench` (with `--release`) measures.

mod bench;
mod bench_uring;
mod completion_demo;
mod fairness;
mod std_only;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Context;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ch01_os_threads::delay_server::{Config as BlockingConfig, DemoServer};
use ch01_os_threads::http::path;
use ch01_os_threads::trace::section;
use ch01_os_threads::{bench_kit, cli, say, sys};
use ch03_epoll::poll::{Interest, Poll, Token};
use ch05_runtime::server::{AsyncDelayServer, Config};
use ch05_runtime::time::{sleep, timeout};
use ch05_runtime::trace::Tracer;
use ch05_runtime::{Builder, IoDriver, Runtime, channel, http, reactor, spawn, spawn_blocking, svg, task, waker};

const HELP: &str = "\
ch05-runtime: a reactor/executor runtime on std's Future and Waker

USAGE:
    cargo run -p ch05-runtime [-- COMMAND]

COMMANDS:
    (none)             the guided demo: GETs as tasks with every poll, wait and wake
                       shown, timers, JoinErrors, spawn_blocking, a channel, the
                       multi-threaded executor, loose coupling, who gets the CPU,
                       completion I/O on io_uring (about 2 s)
    --trace            the demo, printing every task's timeline as it happens
                       (parts 1 to 7; part 8 polls too often to print)
    --trace-svg FILE   the demo, then its timeline drawn in FILE (SVG; open it in
                       a browser)
    --fairness-svg DIR part 8's busy receiver twice, budget off and on, drawn in
                       DIR/ch05-budget-off.svg and DIR/ch05-budget-on.svg
    serve [OPTIONS]    the delay server as an async server on one thread
    bench              what a task costs, next to OS threads and fibers
                       (use --release; --json: one JSON object per figure
                       and line instead of the table)
    --help             this text

SERVE OPTIONS:
    --host H               address to listen on (default 127.0.0.1)
    --port N               port (default 8080; 0 lets the OS choose)
    --max-connections N    connections served at once; more get 503 (default 16384)

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
                             (the demo and the bench)
";

/// The five GETs of parts 1 and 6: (delay in ms, message).
const FIVE: [(u64, &str); 5] = [(250, "a"), (50, "b"), (200, "c"), (100, "d"), (150, "e")];

fn main() -> ExitCode {
    ch01_os_threads::trace::start();
    ch01_os_threads::cli::quiet_closed_pipes();
    cli::exit_code(run(std::env::args().skip(1).collect()))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(None),
        Some("--trace") if args.len() == 1 => demo(Some(Tracer::new(true, false))),
        Some("--trace-svg") => match &args[1..] {
            [file] => demo_with_svg(file),
            _ => bail!("--trace-svg takes one file name, e.g. --trace-svg timeline.svg"),
        },
        Some("--fairness-svg") => match &args[1..] {
            [dir] => fairness::pictures(dir),
            _ => bail!("--fairness-svg takes one directory, e.g. --fairness-svg /tmp"),
        },
        Some("serve") => serve(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        // Hidden: the bench runs this binary again for its server and its runs.
        Some(bench_kit::SERVE) => bench::serve_for_bench(),
        Some(bench_kit::RUN) => bench::run_one(&args[1..]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(cli::unknown("command", other)),
    }
}

fn demo_with_svg(file: &str) -> anyhow::Result<()> {
    let tracer = Tracer::new(false, true);
    demo(Some(tracer.clone()))?;
    let records = tracer.records();
    let tasks = records.iter().map(|r| r.task).collect::<std::collections::BTreeSet<_>>().len();
    std::fs::write(file, svg::render(&records)).with_context(|| format!("writing {file}"))?;
    say!("main", "wrote {file}: {tasks} task(s), {} event(s); open it in a browser", records.len());
    Ok(())
}

/// A runtime builder with the demo's tracer, if any.
fn builder(tracer: &Option<Tracer>) -> Builder {
    match tracer {
        Some(tracer) => Runtime::builder().trace(tracer.clone()),
        None => Runtime::builder(),
    }
}

fn demo(tracer: Option<Tracer>) -> anyhow::Result<()> {
    quiet_panics();
    let server = DemoServer::from_env_or_start(BlockingConfig::default()).context("starting the delay server")?;
    say!("main", "{}", server.describe());
    let addr = server.addr();
    let runtime = builder(&tracer).log_cycle(true).build()?;

    // ANCHOR: demo_five
    let longest = FIVE.iter().map(|(delay, _)| *delay).max().unwrap_or(0);
    section(1, &format!("one task per GET, {} at once: poll, wait, wake", FIVE.len()));
    reactor::log_events(true);
    let started = Instant::now();
    let bodies = runtime.block_on(five_gets(addr))?;
    reactor::log_events(false);
    let took = started.elapsed().as_millis();
    let sum: u64 = FIVE.iter().map(|(delay, _)| *delay).sum();
    say!("main", "got {bodies:?} in {took} ms: {}", compare_with_delays(took, longest, sum));
    // ANCHOR_END: demo_five
    let runtime = builder(&tracer).build()?; // the rest without the cycle lines

    // ANCHOR: demo_timers
    let (nap, limit, slow) = (Duration::from_millis(100), Duration::from_millis(50), 300);
    section(2, "timers: a sleep, and a timeout that fires");
    runtime.block_on(async move {
        let sleeper = spawn(async move {
            let started = Instant::now();
            sleep(nap).await;
            say!(me(), "slept {} ms (asked for {} ms)", started.elapsed().as_millis(), nap.as_millis());
        });
        let slow_path = path(slow, "too slow");
        let get = OnDrop::new(http::get(addr, &slow_path), "the GET future was dropped: its socket closed");
        match timeout(limit, get).await {
            Ok(_) => say!("main", "the {slow} ms GET finished within {} ms?", limit.as_millis()),
            Err(elapsed) => say!("main", "timeout({} ms, a {slow} ms GET): Err({elapsed})", limit.as_millis()),
        }
        let _ = sleeper.await;
    });
    // ANCHOR_END: demo_timers

    // ANCHOR: demo_join_errors
    section(3, "a task that panics and a task that is aborted: JoinHandle says so");
    runtime.block_on(async move {
        let panics = spawn(async {
            if true {
                panic!("deliberately, to show JoinError");
            }
        });
        match panics.await {
            Ok(()) => say!("main", "the panicking task returned?"),
            Err(e) => say!("main", "JoinHandle: Err({e})"),
        }
        let sleeper = spawn(async { sleep(Duration::from_secs(3600)).await });
        // A moment for it to be polled and start its hour-long wait, so the
        // abort stops a waiting task (an unpolled one would do as well).
        sleep(Duration::from_millis(10)).await;
        sleeper.abort();
        match sleeper.await {
            Ok(()) => say!("main", "the aborted task finished?"),
            Err(e) => say!("main", "JoinHandle: Err({e})"),
        }
        let after = http::get(addr, &path(0, "still serving")).await.and_then(|r| r.into_ok_body());
        say!("main", "and the runtime carries on: got {:?}", after.unwrap_or_else(|e| e.to_string()));
    });
    // ANCHOR_END: demo_join_errors

    blocking_file(&runtime)?;
    channel_between_tasks(&runtime);

    other_runtimes(addr, &tracer)?;
    loose_coupling(addr, &tracer)?;
    fairness::part(addr)?;
    completion_demo::part(addr, &tracer)?;
    Ok(())
}

/// What `took` ms for GETs with the longest delay `longest` and the delays'
/// sum `sum` says, in words: said from the measured time, so it stays true
/// when a task is made to hold the thread.
fn compare_with_delays(took: u128, longest: u64, sum: u64) -> String {
    let (took, longest, sum) = (took as u64, longest, sum);
    if took < (longest + sum) / 2 {
        format!("about the LONGEST delay ({longest} ms), not the sum ({sum} ms)")
    } else if took < sum {
        format!("between the longest delay ({longest} ms) and the sum ({sum} ms): the waits partly overlapped")
    } else {
        format!("the SUM of the delays ({sum} ms) or more: something kept the thread from the waiting tasks")
    }
}

// ANCHOR: demo_other_runtimes
/// Part 6: the same GETs on the two other runtimes. A single-threaded one
/// that owns its reactor waits in that reactor's `epoll_wait` itself, so the
/// wake lands on its own thread (part 1's went through the injector); the
/// multi-threaded one runs the tasks on its workers.
fn other_runtimes(addr: std::net::SocketAddr, tracer: &Option<Tracer>) -> anyhow::Result<()> {
    const WORKERS: usize = 2;
    section(6, &format!("the same {} GETs on the two other runtimes", FIVE.len()));
    let runtimes = [
        (
            "its own reactor (IoDriver::ExecutorThread)",
            builder(tracer).io_driver(IoDriver::ExecutorThread).log_cycle(true),
        ),
        ("the multi-threaded executor", builder(tracer).worker_threads(WORKERS)),
    ];
    for (what, runtime) in runtimes {
        let runtime = runtime.build()?;
        say!("main", "on a runtime with {what}:");
        let started = Instant::now();
        let bodies = runtime.block_on(five_gets(addr))?;
        say!("main", "got {bodies:?} in {} ms: same futures, another executor", started.elapsed().as_millis());
    }
    Ok(())
}
// ANCHOR_END: demo_other_runtimes

// ANCHOR: five_gets
/// Spawns one task per GET of [`FIVE`], then awaits their `JoinHandle`s in
/// order: the bodies come back in input order, each when its task is done.
async fn five_gets(addr: std::net::SocketAddr) -> anyhow::Result<Vec<String>> {
    let handles: Vec<_> = FIVE
        .iter()
        .map(|&(delay, message)| {
            spawn(async move {
                let body = http::get(addr, &path(delay, message)).await?.into_ok_body()?;
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                say!(me(), "got {body:?} (asked with a {delay} ms delay) on thread {thread}");
                Ok::<_, std::io::Error>(body)
            })
        })
        .collect();
    let ids: Vec<String> = handles.iter().map(|handle| handle.id().0.to_string()).collect();
    say!("main", "spawned tasks {}; block_on now awaits their JoinHandles", ids.join(", "));
    let mut bodies = Vec::new();
    for handle in handles {
        bodies.push(handle.await??);
    }
    Ok(bodies)
}
// ANCHOR_END: five_gets

/// `[task N]`, for the task this code runs in.
fn me() -> String {
    task::current_id().map_or_else(|| "main".to_string(), |id| id.to_string())
}

// ANCHOR: demo_blocking
/// Part 4: `epoll` refuses a regular file; `spawn_blocking` reads it on a
/// pool thread while the executor's thread stays free.
fn blocking_file(runtime: &Runtime) -> anyhow::Result<()> {
    section(4, "a regular file: epoll refuses it, spawn_blocking reads it");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let opened = std::fs::File::open(file).with_context(|| format!("opening {file}"))?;
    let poll = Poll::new()?; // chapter 3's epoll wrapper, as in its demo
    match poll.registry().register(&opened, Token(0), Interest::READABLE) {
        Ok(()) => say!("main", "epoll accepted {file}?"),
        Err(e) => say!("main", "epoll_ctl(ADD, {file}): {e}: a regular file is always \"ready\""),
    }
    runtime.block_on(async {
        let executor_thread = std::thread::current().name().unwrap_or("?").to_string();
        let read = spawn_blocking(move || {
            let bytes = std::fs::read(file);
            (bytes, std::thread::current().name().unwrap_or("?").to_string())
        });
        let (bytes, pool_thread) = read.await?;
        say!(
            "main",
            "spawn_blocking read {} bytes on thread {pool_thread}; the executor's thread ({executor_thread}) \
             was free for tasks meanwhile",
            bytes?.len()
        );
        Ok::<_, anyhow::Error>(())
    })
}
// ANCHOR_END: demo_blocking

// ANCHOR: demo_channel
/// Part 5: a channel; the consumer's wakes come from the producer task.
fn channel_between_tasks(runtime: &Runtime) {
    const MESSAGES: u64 = 3;
    section(5, "a channel: one task wakes another");
    runtime.block_on(async {
        let (tx, mut rx) = channel::channel();
        let consumer = spawn(async move {
            let mut got = 0;
            while let Some((n, from)) = rx.recv().await {
                say!(me(), "received {n} from {from}");
                got += 1;
            }
            say!(me(), "the channel closed after {got} message(s)");
        });
        let producer = spawn(async move {
            for n in 1..=MESSAGES {
                sleep(Duration::from_millis(20)).await;
                say!(me(), "send {n}");
                tx.send((n, me())).expect("the consumer is alive");
            }
        });
        let _ = producer.await;
        let _ = consumer.await;
    });
}
// ANCHOR_END: demo_channel

// ANCHOR: demo_loose_coupling
/// Part 7: the leaf futures need no particular executor, and the executor
/// needs no particular future.
fn loose_coupling(addr: std::net::SocketAddr, tracer: &Option<Tracer>) -> anyhow::Result<()> {
    section(7, "loose coupling: the reactor and the executor meet only through Waker");
    let body = waker::block_on(async move {
        sleep(Duration::from_millis(10)).await;
        http::get(addr, &path(20, "no runtime needed")).await?.into_ok_body()
    })?;
    say!("main", "waker::block_on (poll, park, repeat; a hand-written waker) ran a sleep and a GET: {body:?}");
    let runtime = builder(tracer).build()?;
    let said = runtime.block_on(async { spawn(std_only::ThreadTimer::after(Duration::from_millis(10))).await })?;
    say!("main", "a future that imports nothing from ch05 ran as our task: {said:?}");
    Ok(())
}
// ANCHOR_END: demo_loose_coupling

/// Wraps a future and prints a line when it is dropped: cancellation made visible.
struct OnDrop<F> {
    future: Pin<Box<F>>,
    message: &'static str,
}

impl<F> OnDrop<F> {
    fn new(future: F, message: &'static str) -> OnDrop<F> {
        OnDrop { future: Box::pin(future), message }
    }
}

impl<F: Future> Future for OnDrop<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<F::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<F> Drop for OnDrop<F> {
    fn drop(&mut self) {
        say!(me(), "{}", self.message);
    }
}

/// The demo panics on purpose (part 3): print that as one line, not a
/// backtrace, so the output stays readable. Other panics print the same way.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| format!(" in {}", l.file())).unwrap_or_default();
        say!(me(), "panicked{at}: {message}");
    }));
}

/// `serve`: the async delay server, until Ctrl-C.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let options = cli::ServeOptions::parse(args)?;
    let mut config = Config { addr: options.addr, log_requests: true, ..Config::default() };
    config.max_connections = options.max_connections.unwrap_or(config.max_connections);
    // Every connection is a socket: raise the open-files limit, as chapter 3 does.
    let limit = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let cap = config.max_connections;
    let server = AsyncDelayServer::start(config)?;
    say!("server", "async delay server listening on {} (one thread, up to {cap} connections)", server.addr());
    say!("server", "open files allowed (RLIMIT_NOFILE): {limit}");
    cli::print_serve_hints(server.addr());
    // The server runs on its own thread; this one has nothing left to do.
    let _running = server;
    loop {
        std::thread::park();
    }
}
