//! `bench`: N concurrent GETs through coroutines vs chapter 3's raw event loop.
//!
//! Through chapter 1's `bench_kit`: every measured run is a fresh process
//! (this binary again, with the hidden `bench-run`), so that its peak
//! resident memory belongs to that run alone and no allocator cache from an
//! earlier run hides what it used; the delay server runs in another child
//! process (`bench-serve`), since 10 000 connections mean 10 000 server
//! threads, which should not share an address space and a file-descriptor
//! limit with the client being measured. `DELAY_SERVER=host:port` uses an
//! external server instead.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, bail};
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::report::{self, Figures, Table};
use ch01_os_threads::trace::say_aside;
use ch01_os_threads::{cli, http, sys};
use ch04_coroutines::combinators::then;
use ch04_coroutines::future::{Future, ready};
use ch04_coroutines::http::HttpGetFuture;
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::Executor;

/// How long the server holds every request: long enough that all N
/// requests are in flight at the same time.
const DELAY_MS: u64 = 1_000;
/// Runs per cell; the table shows the median.
const RUNS: usize = 3;
/// The request counts.
const SIZES: [usize; 2] = [1_000, 10_000];

/// The two ways to send N GETs: (id on the `bench-run` command line, name in the table).
const APPROACHES: [(&str, &str); 2] = [("coroutines", "coroutines"), ("raw", "raw event loop")];

/// `bench [--json]`: every approach at every size, each run in a fresh
/// process; a table, or with `--json` one JSON object per figure and line
/// (what the bench says on the way then goes to stderr).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (json, rest) = report::json_flag(args);
    if let Some(other) = rest.first() {
        return Err(cli::unknown("bench option", other));
    }
    let limit = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let raised = format!("open-file limit (RLIMIT_NOFILE) raised to its hard limit, {limit}, here and in each child");
    say_aside(json, "bench", &raised);
    let server = BenchServer::from_env_or_child().context("starting the bench's delay server")?;
    say_aside(json, "bench", &format!("{}; every GET waits {DELAY_MS} ms", server.describe()));
    let mut figures = Figures::new("ch04");
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
    let sizes: Vec<usize> = SIZES.into_iter().filter(|&n| n as u64 + 64 <= limit).collect();
    for n in SIZES.iter().filter(|n| !sizes.contains(n)) {
        let skip = format!("skipping N = {n}: the open-files limit {limit} is too low (raise `ulimit -Hn`)");
        say_aside(json, "bench", &skip);
    }
    let mut notes = Vec::new();
    let mut progress = Progress::new(sizes.len() * APPROACHES.len() * RUNS);
    for &n in &sizes {
        for (id, name) in APPROACHES {
            let mut samples: Vec<Sample> = Vec::with_capacity(RUNS);
            let mut overflows = Vec::with_capacity(RUNS);
            for run in 1..=RUNS {
                progress.start(&format!("{name} N={n} run {run}/{RUNS}"));
                // Chapter 1's reader of TcpExtListenOverflows; 0 if /proc does not have it.
                let before = bench_kit::listen_overflows().unwrap_or(0);
                let args = [id.to_string(), n.to_string(), server.addr.to_string()];
                samples.push(bench_kit::run_in_child(&args)?);
                overflows.push(bench_kit::listen_overflows().unwrap_or(0).saturating_sub(before));
                progress.finish_step();
            }
            let median = |f: fn(&Sample) -> u64| report::median(&samples.iter().map(f).collect::<Vec<_>>());
            let wall = Duration::from_nanos(median(|s| s.wall.as_nanos() as u64).unwrap_or(0));
            let cpu = Duration::from_nanos(median(|s| s.cpu.as_nanos() as u64).unwrap_or(0));
            let rise = median(|s| s.rss_rise).unwrap_or(0);
            let polls = samples.iter().filter_map(|s| s.outcome.polls).collect::<Vec<_>>();
            let failed: usize = samples.iter().map(|s| n - s.outcome.answered.min(n)).sum();
            if let Some(error) = samples.iter().find_map(|s| s.outcome.first_error.clone()) {
                notes.push(format!("note: {name} at N = {n}, first failure: {error}"));
            }
            let cell = format!("{name} N={n}");
            figures
                .time(&format!("{cell}: wall"), wall)
                .time(&format!("{cell}: CPU time"), cpu)
                .bytes(&format!("{cell}: peak RSS added"), rise)
                .bytes(&format!("{cell}: per request"), rise / n as u64)
                .number(&format!("{cell}: failed GETs"), failed as f64, "count");
            if let Some(polls) = report::median(&polls) {
                figures.number(&format!("{cell}: polls"), polls as f64, "count");
            }
            table.row(&[
                n.to_string(),
                name.to_string(),
                report::duration(wall),
                report::duration(cpu),
                report::bytes(rise),
                report::bytes(rise / n as u64),
                report::median(&polls).map_or("-".to_string(), |p| p.to_string()),
                report::median(&overflows).unwrap_or(0).to_string(),
                failed.to_string(),
            ]);
        }
    }
    drop(progress);
    if json {
        print!("{}", figures.to_json_lines());
        return Ok(());
    }
    println!("\n{}", report::machine());
    println!("{table}");
    let legend = format!(
        "Median of {RUNS} runs, each in a fresh process. wall includes the {DELAY_MS} ms the server waits; CPU \
         and memory are the client's only; 'peak RSS added' = VmHWM minus VmRSS at the start of the run. \
         'listen overflows' = SYNs or handshake ACKs dropped because the server's accept queue was full \
         (TcpExtListenOverflows, whole machine; one connection can count more than once): each costs its \
         client a retry after 1 s or more, which is what makes wall time at 10 000 vary. 'failed GETs' is \
         the total over the {RUNS} runs."
    );
    print!("{}", report::wrap(&legend, 100, ""));
    for note in notes {
        print!("{}", report::wrap(&note, 100, "      "));
    }
    Ok(())
}

/// `bench-run <approach> <n> <addr>`: one measured run, printed as one
/// sample line for the parent.
pub fn run_one(args: &[String]) -> anyhow::Result<()> {
    let [approach, n, addr] = args else { bail!("usage: bench-run <approach> <n> <addr>") };
    let n: usize = n.parse().context("n")?;
    let addr: SocketAddr = addr.parse().context("addr")?;
    sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let path = http::path(DELAY_MS, "x");
    let sample = bench_kit::measure_run(|| match approach.as_str() {
        "coroutines" => coroutines(addr, &path, n),
        "raw" => raw_event_loop(addr, &path, n),
        other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unknown approach {other:?}"))),
    })?;
    // A failed GET (e.g. a handshake the busy server dropped until the client
    // gave up) is counted in the table, not hidden and not fatal.
    bench_kit::print_sample(&sample)?;
    Ok(())
}

// ANCHOR: bench_coroutines
/// N tasks on our executor, each a `then` coroutine around one
/// `HttpGetFuture`. Reports the successful GETs and the polls.
fn coroutines(addr: SocketAddr, path: &str, n: usize) -> io::Result<Outcome> {
    let log = Log::silent();
    let mut executor = Executor::new(&log)?;
    let ok = Rc::new(Cell::new(0));
    let first_error: Rc<Cell<Option<String>>> = Rc::default();
    let tasks: Vec<Box<dyn Future<Output = ()>>> = (0..n)
        .map(|_| {
            let (ok, first_error) = (Rc::clone(&ok), Rc::clone(&first_error));
            let task = then(HttpGetFuture::new(addr, path), move |body: io::Result<String>| {
                match body {
                    Ok(_) => ok.set(ok.get() + 1),
                    Err(e) => {
                        let earlier = first_error.take();
                        first_error.set(earlier.or(Some(e.to_string())));
                    }
                }
                ready(())
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    executor.run(tasks)?;
    Ok(Outcome { answered: ok.get(), first_error: first_error.take(), polls: Some(executor.stats().polls) })
}
// ANCHOR_END: bench_coroutines

/// The same N GETs through chapter 3's event loop (`ch03_epoll::client::get_all`):
/// one `Vec` of ch03 `HttpGet` state machines indexed by token, no futures.
fn raw_event_loop(addr: SocketAddr, path: &str, n: usize) -> io::Result<Outcome> {
    let paths = vec![path.to_string(); n];
    let results = ch03_epoll::client::get_all(addr, &paths, Duration::from_secs(60), |_| {})?;
    let first_error = results.iter().find_map(|result| result.as_ref().err()).map(ToString::to_string);
    let answered = results.iter().filter(|result| result.as_ref().is_ok_and(|response| response.status == 200)).count();
    Ok(Outcome { answered, first_error, polls: None })
}
