//! `bench`: N concurrent GETs through coroutines vs chapter 3's raw event loop.
//!
//! Every measured run is a fresh process (this binary, re-executed with a
//! hidden `bench-run` argument), so that its peak resident memory (`VmHWM`)
//! belongs to that run alone and no allocator cache from an earlier run
//! hides what it used. The delay server runs in another child process
//! (`serve-for-bench`): 10 000 connections mean 10 000 server threads, which
//! should not share an address space and a file-descriptor limit with the
//! client being measured.

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::Config;
use ch01_os_threads::measure::{ProcStatus, cpu_time};
use ch01_os_threads::report::{self, Table};
use ch01_os_threads::{http, say};
use ch03_epoll::bench::{ChildServer, listen_overflows};
use ch04_coroutines::combinators::then;
use ch04_coroutines::future::{Future, ready};
use ch04_coroutines::http::HttpGetFuture;
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::Executor;

/// Hidden subcommand: one measured run.
pub const RUN_ONE: &str = "bench-run";

/// How long the server holds every request: long enough that all N
/// requests are in flight at the same time.
const DELAY_MS: u64 = 1_000;
/// Runs per cell; the table shows the median.
const RUNS: usize = 3;
/// The request counts.
const SIZES: [usize; 2] = [1_000, 10_000];

/// The two ways to send N GETs.
const APPROACHES: [&str; 2] = ["coroutines", "raw event loop"];

/// One measured run, as `bench-run` prints it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_extra: u64,
    polls: u64,
    failed: u64,
}

pub fn run() -> anyhow::Result<()> {
    let limit = ch03_epoll::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    say!("main", "RLIMIT_NOFILE: soft limit raised to the hard limit, {limit} (the child processes inherit it)");
    let server = ChildServer::start().context("starting the delay server in a child process")?;
    say!("main", "delay server (child process {}) on {}; every GET waits {DELAY_MS} ms", server.id(), server.addr());

    println!("{}", report::machine());
    let mut table = Table::new(&[
        "N GETs at once",
        "approach",
        "wall",
        "CPU",
        "peak RSS added",
        "per request",
        "polls",
        "listen overflows",
        "failed GETs",
    ]);
    for n in SIZES {
        if n as u64 + 64 > limit {
            say!("main", "skipping N = {n}: the open-files limit {limit} is too low (raise `ulimit -Hn`)");
            continue;
        }
        for approach in APPROACHES {
            let mut samples = Vec::with_capacity(RUNS);
            let mut overflows = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                // Chapter 3's reader of TcpExtListenOverflows; 0 if /proc does not have it.
                let before = listen_overflows().unwrap_or(0);
                samples.push(run_child(approach, n, server.addr())?);
                overflows.push(listen_overflows().unwrap_or(0).saturating_sub(before));
            }
            let median =
                |f: fn(&Sample) -> u64| report::median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0);
            let wall = Duration::from_nanos(median(|s| s.wall.as_nanos() as u64));
            let cpu = Duration::from_nanos(median(|s| s.cpu.as_nanos() as u64));
            let peak = median(|s| s.peak_extra);
            let polls = if approach == "coroutines" { median(|s| s.polls).to_string() } else { "-".into() };
            table.row(&[
                n.to_string(),
                approach.to_string(),
                report::duration(wall),
                report::duration(cpu),
                report::bytes(peak),
                report::bytes(peak / n as u64),
                polls,
                report::median(&overflows).unwrap_or(0).to_string(),
                samples.iter().map(|s| s.failed).sum::<u64>().to_string(),
            ]);
        }
    }
    println!("{table}");
    println!(
        "(median of {RUNS} runs, each in a fresh process; wall includes the {DELAY_MS} ms the server waits; \
         CPU and memory are the client's only; 'peak RSS added' = VmHWM minus VmRSS at the start of the run;\n\
         'listen overflows' = SYNs or handshake ACKs dropped because the server's accept queue was full \
         (TcpExtListenOverflows, system-wide; one connection can count more than once): each costs its client \
         a retry after 1 s or more, which is what makes wall time at 10 000 vary;\n\
         'failed GETs' is the total over the {RUNS} runs)"
    );
    Ok(())
}

/// Runs one measurement in a child process and reads its numbers.
fn run_child(approach: &str, n: usize, addr: SocketAddr) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let output = Command::new(exe)
        .args([RUN_ONE, approach, &n.to_string(), &addr.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running a bench child")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the {approach} run with N = {n} failed ({}): {text}", output.status);
    }
    let numbers: Vec<u64> = text.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    let [wall, cpu, peak_extra, polls, failed] = numbers[..] else { bail!("unexpected bench-run output {text:?}") };
    Ok(Sample { wall: Duration::from_nanos(wall), cpu: Duration::from_nanos(cpu), peak_extra, polls, failed })
}

/// `bench-run <approach> <n> <addr>`: one run; prints
/// `<wall ns> <cpu ns> <peak RSS added> <polls> <failed GETs>`.
pub fn run_one(args: &[String]) -> anyhow::Result<()> {
    let [approach, n, addr] = args else { bail!("usage: {RUN_ONE} <approach> <n> <addr>") };
    let n: usize = n.parse().context("n")?;
    let addr: SocketAddr = addr.parse().context("addr")?;
    ch03_epoll::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let path = http::path(DELAY_MS, "x");

    let before = ProcStatus::read()?.resident_bytes;
    let cpu_before = cpu_time()?;
    let started = Instant::now();
    let (ok, polls) = match approach.as_str() {
        "coroutines" => coroutines(addr, &path, n)?,
        "raw event loop" => (raw_event_loop(addr, &path, n)?, 0),
        other => bail!("unknown approach {other:?}"),
    };
    let wall = started.elapsed();
    let cpu = cpu_time()?.saturating_sub(cpu_before);
    let peak = ProcStatus::read()?.peak_resident_bytes;
    // A failed GET (e.g. a handshake the busy server dropped until the client
    // gave up) is counted in the table, not hidden and not fatal.
    let failed = n - ok;
    println!("{} {} {} {polls} {failed}", wall.as_nanos(), cpu.as_nanos(), peak.saturating_sub(before));
    Ok(())
}

// ANCHOR: bench_coroutines
/// N tasks on our executor, each a `then` coroutine around one
/// `HttpGetFuture`. Returns (successful GETs, polls).
fn coroutines(addr: SocketAddr, path: &str, n: usize) -> anyhow::Result<(usize, u64)> {
    let log = Log::silent();
    let mut executor = Executor::new(&log)?;
    let ok = Rc::new(Cell::new(0));
    let tasks: Vec<Box<dyn Future<Output = ()>>> = (0..n)
        .map(|_| {
            let ok = Rc::clone(&ok);
            let task = then(HttpGetFuture::new(addr, path), move |body: std::io::Result<String>| {
                match body {
                    Ok(_) => ok.set(ok.get() + 1),
                    Err(e) => eprintln!("[bench] coroutine GET failed: {e}"),
                }
                ready(())
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    executor.run(tasks)?;
    Ok((ok.get(), executor.stats().polls))
}
// ANCHOR_END: bench_coroutines

/// The same N GETs through chapter 3's event loop (`ch03_epoll::client::get_all`):
/// one `Vec` of ch03 `HttpGet` state machines indexed by token, no futures.
fn raw_event_loop(addr: SocketAddr, path: &str, n: usize) -> anyhow::Result<usize> {
    let paths = vec![path.to_string(); n];
    let results = ch03_epoll::client::get_all(addr, &paths, Duration::from_secs(60), |_| {})?;
    for error in results.iter().filter_map(|result| result.as_ref().err()) {
        eprintln!("[bench] raw event loop GET failed: {error}");
    }
    Ok(results.iter().filter(|result| result.as_ref().is_ok_and(|response| response.status == 200)).count())
}

/// The server the bench runs in a child process (see
/// [`ch03_epoll::bench::ChildServer`]): room for 10 000+ connections.
pub fn server_config() -> Config {
    Config { max_connections: 12_000, ..Config::default() }
}
