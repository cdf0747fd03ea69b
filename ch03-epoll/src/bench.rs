//! `bench`: N concurrent delayed requests four ways.
//!
//! - **epoll**: one thread, our `client` on our `Poll` (readiness);
//! - **io_uring**: one thread, our `uring_client` on our `Ring` (completion);
//! - **mio**: one thread, `mio_client`;
//! - **threads**: chapter 1's way, one OS thread per request, each blocked in
//!   `ch01_os_threads::client::get`.
//!
//! Each request asks the delay server to wait `--delay-ms`; all are in flight
//! at once, so the ideal wall time is the delay itself, and what we measure is
//! the price of waiting for N things at once: wall time, CPU time (user plus
//! system, of the client process only), memory (peak resident set, and how
//! far it rose above where the run started), and for our two clients the
//! system calls per request, counted where they are made (`counting`).
//! Where io_uring is not available, its rows are left out with a note.
//!
//! The server and every measured run are separate processes, through
//! chapter 1's `bench_kit` (the server in a child process, each run in a
//! fresh one, one sample line between them).

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::report::{self, Figure, Figures, Table};
use ch01_os_threads::trace::say_aside;
use ch01_os_threads::{cli, http, sys};
use ch03_epoll::counting::{self, Syscall, Syscalls};
use ch03_epoll::uring::{Ring, Unavailable};
use ch03_epoll::{client, mio_client, uring_client};

/// How long the server waits before answering each request, by default.
const DELAY_MS: u64 = 500;

/// Stack of each thread-per-request client thread. The thread only runs a
/// blocking `connect`/`write`/`read`, so 64 KiB is plenty (std's default is 2 MiB).
const CLIENT_THREAD_STACK: usize = 64 * 1024;

/// How long one run may take before its unfinished requests count as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The four ways of waiting for N answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approach {
    /// One thread, our epoll-based client.
    Epoll,
    /// One thread, our io_uring-based client.
    Uring,
    /// One thread, the mio-based client.
    Mio,
    /// One blocking OS thread per request (chapter 1).
    Threads,
}

impl Approach {
    /// The four, in the order the table lists them.
    const ALL: [Approach; 4] = [Approach::Epoll, Approach::Uring, Approach::Mio, Approach::Threads];

    /// The short name on the `bench-run` command line.
    fn id(self) -> &'static str {
        match self {
            Approach::Epoll => "epoll",
            Approach::Uring => "uring",
            Approach::Mio => "mio",
            Approach::Threads => "threads",
        }
    }

    /// The name in the table.
    fn name(self) -> &'static str {
        match self {
            Approach::Epoll => "epoll, 1 thread",
            Approach::Uring => "io_uring, 1 thread",
            Approach::Mio => "mio, 1 thread",
            Approach::Threads => "thread per request",
        }
    }

    /// Whether the run counts its system calls (our own two clients: the
    /// counters sit in their code).
    fn counts_syscalls(self) -> bool {
        matches!(self, Approach::Epoll | Approach::Uring)
    }
}

/// The line a run prints, before its sample, with its system calls.
const SYSCALLS: &str = "syscalls";

/// `bench [--sizes 100,1000] [--delay-ms 500] [--json]`: finds or starts a
/// delay server, runs every approach for every size, prints the table (or,
/// with `--json`, one JSON object per figure and line).
pub fn bench(args: &[String]) -> anyhow::Result<()> {
    let (json, args) = report::json_flag(args);
    let mut sizes = vec![100, 1_000, 10_000];
    let mut delay_ms = DELAY_MS;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().with_context(|| format!("{flag} needs a value (see --help)"))?;
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
            _ => return Err(cli::unknown("bench option", flag)),
        }
    }
    // With --json, stdout carries only the JSON lines: what the bench says
    // on the way goes to stderr.
    let soft = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let raised = format!("open-file limit (RLIMIT_NOFILE) raised to its hard limit, {soft}, here and in each child");
    say_aside(json, "bench", &raised);
    for &n in &sizes {
        // One socket (one fd) per request, plus a few the process already has open.
        if n as u64 + 64 > soft {
            let warning = format!("N = {n} does not fit under that limit: expect failed requests (raise `ulimit -Hn`)");
            say_aside(json, "bench", &warning);
        }
    }
    let server = BenchServer::from_env_or_child().context("starting the bench's delay server")?;
    say_aside(json, "bench", &server.describe());
    // io_uring may be refused here: then its rows are left out, and the
    // notes under the table say why.
    let approaches: Vec<Approach> = match Ring::new(1).map_err(|e| (Unavailable::from_error(&e), e)) {
        Ok(_) => Approach::ALL.to_vec(),
        Err((Some(why), _)) => {
            say_aside(json, "bench", &format!("io_uring is not available here ({why}): no io_uring rows"));
            Approach::ALL.into_iter().filter(|&a| a != Approach::Uring).collect()
        }
        Err((None, e)) => return Err(e).context("io_uring_setup"),
    };
    let mut figures = Figures::new("ch03");
    let table = table(&server, &sizes, delay_ms, &approaches, &mut figures)?;
    if json {
        print!("{}", figures.to_json_lines());
    } else {
        println!("\n{}", report::machine());
        println!("{table}");
    }
    Ok(())
}

// ANCHOR: run
/// The hidden `bench-run APPROACH N DELAY_MS ADDR`: one measured run in this
/// (fresh) process, printed as one sample line for the parent.
pub fn run_one(args: &[String]) -> anyhow::Result<()> {
    let [approach, n, delay_ms, addr] = args else { anyhow::bail!("usage: bench-run APPROACH N DELAY_MS ADDR") };
    let approach = Approach::ALL.into_iter().find(|a| a.id() == approach).context("no such approach")?;
    let n: usize = n.parse().with_context(|| format!("N {n:?}"))?;
    let delay_ms: u64 = delay_ms.parse().with_context(|| format!("delay {delay_ms:?}"))?;
    let addr: SocketAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
    sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;

    let paths: Vec<String> = (0..n).map(|i| http::path(delay_ms, &format!("r{i}"))).collect();
    let before = counting::snapshot();
    let sample = bench_kit::measure_run(|| {
        let results: Vec<io::Result<String>> = match approach {
            Approach::Epoll => bodies(client::get_all(addr, &paths, RUN_TIMEOUT, |_| {})?),
            Approach::Uring => bodies(uring_client::get_all(addr, &paths, RUN_TIMEOUT, |_| {})?),
            Approach::Mio => bodies(mio_client::get_all(addr, &paths, RUN_TIMEOUT, |_| {})?),
            Approach::Threads => one_thread_per_request(addr, &paths),
        };
        let mut outcome = Outcome::default();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(body) if body == format!("r{i}") => outcome.answered += 1,
                Ok(body) => outcome.first_error = outcome.first_error.or(Some(format!("request {i} got {body:?}"))),
                Err(e) => outcome.first_error = outcome.first_error.or(Some(e.to_string())),
            }
        }
        Ok(outcome)
    })?;
    if approach.counts_syscalls() {
        // This thread's counts, one number per kind, in `Syscall::ALL`'s order.
        let calls = counting::snapshot() - before;
        let counts: Vec<String> = Syscall::ALL.iter().map(|&call| calls.of(call).to_string()).collect();
        println!("{SYSCALLS} {}", counts.join(" "));
    }
    bench_kit::print_sample(&sample)?;
    Ok(())
}
// ANCHOR_END: run

/// Reads back the `syscalls ...` line a run printed, if it printed one.
fn syscalls_from(lines: &[String]) -> anyhow::Result<Option<Syscalls>> {
    let Some(line) = lines.iter().find_map(|line| line.strip_prefix(SYSCALLS)) else { return Ok(None) };
    let mut counts = [0u64; Syscall::ALL.len()];
    let mut numbers = line.split_whitespace().map(str::parse::<u64>);
    for count in &mut counts {
        *count = numbers.next().context("too few counts")?.with_context(|| format!("in {line:?}"))?;
    }
    Ok(Some(Syscalls::from(counts)))
}

fn bodies(results: Vec<io::Result<http::Response>>) -> Vec<io::Result<String>> {
    results.into_iter().map(|r| r.and_then(http::Response::into_ok_body)).collect()
}

/// Chapter 1's way: a thread per request, each blocked until its answer.
/// If the OS refuses a thread, the requests without one fail with that error.
fn one_thread_per_request(addr: SocketAddr, paths: &[String]) -> Vec<io::Result<String>> {
    let mut results: Vec<io::Result<String>> =
        paths.iter().map(|_| Err(io::Error::other("no answer (its thread ended without one)"))).collect();
    let (done_tx, done_rx) = mpsc::channel();
    for (i, path) in paths.iter().enumerate() {
        let (done_tx, path) = (done_tx.clone(), path.clone());
        let spawn = thread::Builder::new().stack_size(CLIENT_THREAD_STACK).spawn(move || {
            let body = ch01_os_threads::client::get(addr, &path).and_then(http::Response::into_ok_body);
            let _ = done_tx.send((i, body));
        });
        if let Err(e) = spawn {
            // Out of threads (memory maps, pids, ...): the rest fail with the OS's reason.
            let why = format!("only {i} of {} threads could be started: {e}", paths.len());
            for result in &mut results[i..] {
                *result = Err(io::Error::other(why.clone()));
            }
            break;
        }
    }
    drop(done_tx);
    // Every started thread sends once (ch01's client has timeouts, so each
    // one finishes); the loop ends when the last sender is gone.
    for (i, body) in done_rx {
        results[i] = body;
    }
    results
}

/// Five runs where they are cheap, three where a run holds thousands of
/// sockets (and its wall time depends on which handshakes the server dropped).
fn runs_for(n: usize) -> usize {
    if n <= 100 { 5 } else { 3 }
}

// ANCHOR: table
/// Runs every approach for every size, each run in a fresh process, and
/// returns the table with its legend and notes (and adds each cell to
/// `figures`).
fn table(
    server: &BenchServer,
    sizes: &[usize],
    delay_ms: u64,
    approaches: &[Approach],
    figures: &mut Figures,
) -> anyhow::Result<String> {
    let mut table = Table::new(&[
        "approach",
        "N",
        "runs",
        "wall",
        "CPU time",
        "syscalls/req",
        "peak RSS",
        "RSS rise",
        "answered",
        "listen overflows",
    ]);
    let mut notes = Vec::new();
    if !approaches.contains(&Approach::Uring) {
        notes.push("no io_uring rows: io_uring is not available on this machine".to_string());
    }
    let steps = sizes.iter().map(|&n| runs_for(n) * approaches.len()).sum();
    let mut progress = Progress::new(steps);
    for &n in sizes {
        let runs = runs_for(n);
        if let Some(cap) = server.max_connections
            && n > cap
        {
            notes.push(format!("N = {n} is more than the server's cap of {cap} connections: expect 503s"));
        }
        for &approach in approaches {
            let mut samples: Vec<Sample> = Vec::with_capacity(runs);
            let mut drops = Vec::with_capacity(runs);
            let mut calls: Vec<Syscalls> = Vec::with_capacity(runs);
            for run in 1..=runs {
                progress.start(&format!("{} N={n} run {run}/{runs}", approach.name()));
                let overflows_before = bench_kit::listen_overflows().unwrap_or(0);
                let args = [approach.id(), &n.to_string(), &delay_ms.to_string(), &server.addr.to_string()];
                let (sample, lines) = bench_kit::run_in_child_with_lines(&args.map(String::from))?;
                samples.push(sample);
                calls.extend(syscalls_from(&lines)?);
                drops.push(bench_kit::listen_overflows().unwrap_or(0).saturating_sub(overflows_before));
                progress.finish_step();
            }
            let median =
                |f: fn(&Sample) -> u128| report::median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0);
            let fewest_answered = samples.iter().map(|s| s.outcome.answered).min().unwrap_or(0);
            if let Some(error) = samples.iter().find_map(|s| s.outcome.first_error.clone()) {
                notes.push(format!("{} at N = {n}: {error}", approach.name()));
            }
            if let Some(&most) = drops.iter().max()
                && most > 0
            {
                notes.push(format!(
                    "{} at N = {n}: the server's accept queue overflowed (up to {most} listen overflows per run, \
                     each a dropped SYN or handshake ACK that costs its client a retry after 1 s or more): chapter \
                     1's thread-per-connection server, not this client, set the wall time; compare CPU time and RSS",
                    approach.name()
                ));
            }
            // System calls per request: the run with the median total, so
            // its breakdown (in the notes) adds up to the figure shown.
            calls.sort_by_key(Syscalls::total);
            let median_calls = calls.get(calls.len() / 2).copied();
            let per_request = median_calls.map(|c| c.total() as f64 / n.max(1) as f64);
            if let Some(c) = median_calls {
                notes.push(format!("{} at N = {n}, system calls per request: {}", approach.name(), c.per_request(n)));
            }
            let cell = format!("{} N={n}", approach.name());
            if let Some(per_request) = per_request {
                figures.number(&format!("{cell}: system calls per request"), per_request, "count");
            }
            figures
                .time(&format!("{cell}: wall"), Duration::from_nanos(median(|s| s.wall.as_nanos()) as u64))
                .time(&format!("{cell}: CPU time"), Duration::from_nanos(median(|s| s.cpu.as_nanos()) as u64))
                .bytes(&format!("{cell}: peak RSS"), median(|s| s.peak_rss.into()) as u64)
                .bytes(&format!("{cell}: RSS rise"), median(|s| s.rss_rise.into()) as u64)
                .push(Figure::new("ch03", &format!("{cell}: answered (worst run)"), fewest_answered as f64, "count"))
                .number(&format!("{cell}: listen overflows"), report::median(&drops).unwrap_or(0) as f64, "count");
            table.row(&[
                approach.name().to_string(),
                n.to_string(),
                runs.to_string(),
                report::duration(Duration::from_nanos(median(|s| s.wall.as_nanos()) as u64)),
                report::duration(Duration::from_nanos(median(|s| s.cpu.as_nanos()) as u64)),
                per_request.map_or("-".to_string(), |p| format!("{p:.2}")),
                report::bytes(median(|s| s.peak_rss.into()) as u64),
                report::bytes(median(|s| s.rss_rise.into()) as u64),
                format!("{fewest_answered}/{n}"),
                report::median(&drops).unwrap_or(0).to_string(),
            ]);
        }
    }
    drop(progress);
    let legend = format!(
        "Each request waits {delay_ms} ms at the server; all N are in flight at once; every run is a fresh \
         process. wall, CPU time (the client process: user + system), peak RSS and RSS rise (peak minus the \
         RSS when the run began) are medians over `runs`; \"answered\" is the worst run. \"syscalls/req\": the \
         system calls our own two clients make (socket, connect, epoll_ctl, epoll_wait, getsockopt, getpeername, \
         reads, writes, close, io_uring_enter), counted in-process where they are made, divided by N (median \
         run; mio's and the threads' are not counted). \"listen overflows\" \
         (TcpExt ListenOverflows, whole machine) counts handshake packets dropped because the server's accept \
         queue was full: a SYN (the client's kernel sends it again 1 s later, then 3 s, 7 s after the first \
         try) or the handshake's last ACK (the client's connect() already returned; the server's kernel resends \
         its SYN-ACK after 1 s). One connection can be counted more than once."
    );
    let mut out = format!("{}\n{table}", report::wrap(&legend, 100, ""));
    for note in notes {
        out.push_str(&report::wrap(&format!("note: {note}"), 100, "      "));
    }
    Ok(out)
}
// ANCHOR_END: table
