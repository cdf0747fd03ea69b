//! The chapter's measurement: N concurrent delayed requests three ways.
//!
//! - **epoll**: one thread, our [`client`] on our `Poll`;
//! - **threads**: chapter 1's way, one OS thread per request, each blocked in
//!   `ch01_os_threads::client::get`;
//! - **mio**: one thread, [`mio_client`].
//!
//! Each request asks the delay server to wait [`DELAY_MS`]; all are in flight
//! at once, so the ideal wall time is the delay itself, and what we measure is
//! the price of waiting for N things at once: wall time, CPU time (user plus
//! system, of this process only) and memory (peak resident set, and how far
//! it rose above where the run started).
//!
//! Processes keep the numbers apart. The server runs in a child process of
//! its own (the binary's hidden `serve-for-bench`), so its threads, sockets,
//! CPU time and memory are not mixed into the clients'. And each measured run
//! is a fresh child process too (`bench-run`): a process keeps memory it has
//! freed (the allocator holds on to it, glibc caches exited threads' stacks),
//! so a run measured after another in the same process would carry the
//! earlier run's memory in its peak.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::delay_server::{Config, DelayServer, DemoServer};
use ch01_os_threads::http;
use ch01_os_threads::measure::{self, ProcStatus};
use ch01_os_threads::report::{self, Table};

use crate::{client, mio_client};

/// The hidden subcommand that runs the bench's delay server in a child process.
pub const SERVE_FOR_BENCH: &str = "serve-for-bench";

/// The hidden subcommand that makes one measured run in a fresh child
/// process and prints its [`Sample`] as one line (see [`Sample::to_line`]).
pub const RUN_ONE: &str = "bench-run";

/// How long the server waits before answering each request.
pub const DELAY_MS: u64 = 500;

/// How many connections the bench's server holds at once: above the largest N.
pub const SERVER_MAX_CONNECTIONS: usize = 12_000;

/// Stack of each thread-per-request client thread. The thread only runs a
/// blocking `connect`/`write`/`read`, so 64 KiB is plenty (std's default is 2 MiB).
pub const CLIENT_THREAD_STACK: usize = 64 * 1024;

/// How long one run may take before its unfinished requests count as failed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The delay server the bench starts in its child process: chapter 1's
/// thread-per-connection server, sized for 10 000 connections.
pub fn server_config() -> Config {
    Config {
        max_connections: SERVER_MAX_CONNECTIONS,
        // A handler parses one request and sleeps; 64 KiB is plenty, and
        // 10 000 of them reserve 640 MiB of address space instead of 20 GiB.
        stack_size: 64 * 1024,
        // Ask for a deep accept queue; the kernel caps it at net.core.somaxconn.
        backlog: 65_535,
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

/// The hidden [`SERVE_FOR_BENCH`] subcommand: a delay server with `config`,
/// its address on the first line of stdout, running until stdin closes (the
/// parent closes it when it is done, or when it dies).
///
/// Chapter 4's bench runs its server the same way, through this function.
pub fn serve_for_bench(config: Config) -> io::Result<()> {
    crate::raise_open_files_limit()?;
    let server = DelayServer::start(config)?;
    println!("{}", server.addr());
    io::stdout().flush()?;
    io::stdin().read_to_end(&mut Vec::new())?;
    server.shutdown()?;
    Ok(())
}

/// The bench's delay server in a child process: this same binary, re-run
/// with [`SERVE_FOR_BENCH`] (its `main` must call [`serve_for_bench`] for
/// it). A process of its own keeps the server's threads, sockets, CPU time and
/// memory out of the clients' numbers and limits.
#[derive(Debug)]
pub struct ChildServer {
    /// The child process.
    process: Child,
    /// Its stdin: closing it tells the child to shut down.
    stdin: Option<ChildStdin>,
    /// Where it listens.
    addr: SocketAddr,
}

impl ChildServer {
    /// Starts the child and reads the address it listens on.
    pub fn start() -> io::Result<ChildServer> {
        let mut process = Command::new(std::env::current_exe()?)
            .arg(SERVE_FOR_BENCH)
            .env_remove(DemoServer::ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = process.stdin.take();
        let mut first_line = String::new();
        if let Some(stdout) = process.stdout.take() {
            BufReader::new(stdout).read_line(&mut first_line)?;
        }
        let mut child = ChildServer { process, stdin, addr: SocketAddr::from(([0, 0, 0, 0], 0)) };
        child.addr = first_line.trim().parse().map_err(|_| {
            // `child` drops here: its Drop stops the process.
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server process printed {first_line:?}, not its address"),
            )
        })?;
        Ok(child)
    }

    /// Where the child server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take()); // end of input: the child shuts its server down
        // Its shutdown is bounded (grace period 5 s); give it a little more,
        // then stop it the hard way rather than leave it behind.
        let give_up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < give_up {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Where the bench sends its requests.
#[derive(Debug, Clone, Copy)]
pub struct BenchServer {
    /// The server's address.
    pub addr: SocketAddr,
    /// Its connection cap, if we started it (an external one is unknown).
    pub max_connections: Option<usize>,
}

/// The three ways of waiting for N answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approach {
    /// One thread, our epoll-based client.
    Epoll,
    /// One blocking OS thread per request (chapter 1).
    Threads,
    /// One thread, the mio-based client.
    Mio,
}

impl Approach {
    /// The three, in the order the table lists them.
    pub const ALL: [Approach; 3] = [Approach::Epoll, Approach::Mio, Approach::Threads];

    /// The short name on the command line (`epoll`, `mio`, `threads`).
    pub fn id(self) -> &'static str {
        match self {
            Approach::Epoll => "epoll",
            Approach::Threads => "threads",
            Approach::Mio => "mio",
        }
    }

    /// The approach with this [`id`](Self::id).
    pub fn from_id(id: &str) -> Option<Approach> {
        Approach::ALL.into_iter().find(|a| a.id() == id)
    }

    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Approach::Epoll => "epoll, 1 thread",
            Approach::Threads => "thread per request",
            Approach::Mio => "mio, 1 thread",
        }
    }
}

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct Sample {
    /// From the first connect to the last answer.
    pub wall: Duration,
    /// CPU time this process used during the run (user + system, all threads).
    pub cpu: Duration,
    /// The highest resident set size during the run.
    pub peak_rss: u64,
    /// How far the resident set rose above where it was when the run began.
    pub rss_rise: u64,
    /// Requests answered `200 OK` with the right body.
    pub answered: usize,
    /// The first failure, if any request failed.
    pub first_error: Option<String>,
}

impl Sample {
    /// The sample as one line of text, for a child process to print:
    /// `wall_ns cpu_ns peak_rss rss_rise answered first_error-or--`.
    pub fn to_line(&self) -> String {
        let error = self.first_error.as_deref().unwrap_or("-").replace('\n', " ");
        format!(
            "{} {} {} {} {} {error}",
            self.wall.as_nanos(),
            self.cpu.as_nanos(),
            self.peak_rss,
            self.rss_rise,
            self.answered
        )
    }

    /// Reads back what [`to_line`](Self::to_line) wrote.
    pub fn from_line(line: &str) -> io::Result<Sample> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not a bench sample: {line:?}"));
        let mut parts = line.trim().splitn(6, ' ');
        let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok()).ok_or_else(bad);
        let (wall, cpu, peak_rss, rss_rise, answered) = (number()?, number()?, number()?, number()?, number()?);
        let error = parts.next().ok_or_else(bad)?;
        Ok(Sample {
            wall: Duration::from_nanos(wall),
            cpu: Duration::from_nanos(cpu),
            peak_rss,
            rss_rise,
            answered: answered as usize,
            first_error: (error != "-").then(|| error.to_string()),
        })
    }
}

// ANCHOR: run
/// Sends `n` concurrent requests, each asking the server to wait
/// `delay_ms`, to `addr` the given way, and measures.
pub fn run(approach: Approach, addr: SocketAddr, n: usize, delay_ms: u64) -> io::Result<Sample> {
    let paths: Vec<String> = (0..n).map(|i| http::path(delay_ms, &format!("r{i}"))).collect();
    measure::reset_peak_rss()?; // so this run gets its own peak
    let rss_before = ProcStatus::read()?.resident_bytes;
    let cpu_before = measure::cpu_time()?;
    let started = Instant::now();

    let results: Vec<io::Result<String>> = match approach {
        Approach::Epoll => bodies(client::get_all(addr, &paths, RUN_TIMEOUT, |_| {})?),
        Approach::Mio => bodies(mio_client::get_all(addr, &paths, RUN_TIMEOUT, |_| {})?),
        Approach::Threads => one_thread_per_request(addr, &paths),
    };

    let wall = started.elapsed();
    let cpu = measure::cpu_time()?.saturating_sub(cpu_before);
    let peak_rss = ProcStatus::read()?.peak_resident_bytes;
    let mut answered = 0;
    let mut first_error = None;
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(body) if body == format!("r{i}") => answered += 1,
            Ok(body) => first_error = first_error.or(Some(format!("request {i} got the body {body:?}"))),
            Err(e) => first_error = first_error.or(Some(e.to_string())),
        }
    }
    Ok(Sample { wall, cpu, peak_rss, rss_rise: peak_rss.saturating_sub(rss_before), answered, first_error })
}
// ANCHOR_END: run

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

/// How one measured run is made: `(approach, server, n, delay_ms)`. The
/// binary runs each in a fresh child process ([`RUN_ONE`]); [`run`] does it
/// in this process.
pub type RunOne<'a> = &'a mut dyn FnMut(Approach, SocketAddr, usize, u64) -> io::Result<Sample>;

// ANCHOR: table
/// Runs every approach for every size, each request asking for a
/// `delay_ms` wait, and returns the table (with notes under it).
/// `progress` hears about each run as it finishes.
pub fn table(
    server: &BenchServer,
    sizes: &[usize],
    delay_ms: u64,
    run_one: RunOne<'_>,
    mut progress: impl FnMut(&str),
) -> io::Result<String> {
    let mut table = Table::new(&[
        "approach",
        "N",
        "runs",
        "wall",
        "CPU time",
        "peak RSS",
        "RSS rise",
        "answered",
        "listen overflows",
    ]);
    let mut notes = Vec::new();
    for &n in sizes {
        let runs = runs_for(n);
        if let Some(cap) = server.max_connections
            && n > cap
        {
            notes.push(format!("N = {n} is more than the server's cap of {cap} connections: expect 503s"));
        }
        for approach in Approach::ALL {
            let mut samples = Vec::with_capacity(runs);
            let mut drops = Vec::with_capacity(runs);
            for _ in 0..runs {
                let overflows_before = listen_overflows().unwrap_or(0);
                let sample = run_one(approach, server.addr, n, delay_ms)?;
                drops.push(listen_overflows().unwrap_or(0).saturating_sub(overflows_before));
                progress(&format!(
                    "{:<18} N={n:<6} wall {:>9}  CPU {:>9}  peak RSS {:>9}  answered {}/{n}  listen overflows {}",
                    approach.name(),
                    report::duration(sample.wall),
                    report::duration(sample.cpu),
                    report::bytes(sample.peak_rss),
                    sample.answered,
                    drops.last().copied().unwrap_or(0),
                ));
                samples.push(sample);
            }
            let median =
                |f: fn(&Sample) -> u128| report::median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0);
            let fewest_answered = samples.iter().map(|s| s.answered).min().unwrap_or(0);
            if let Some(error) = samples.iter().find_map(|s| s.first_error.clone()) {
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
            table.row(&[
                approach.name().to_string(),
                n.to_string(),
                runs.to_string(),
                report::duration(Duration::from_nanos(median(|s| s.wall.as_nanos()) as u64)),
                report::duration(Duration::from_nanos(median(|s| s.cpu.as_nanos()) as u64)),
                report::bytes(median(|s| s.peak_rss.into()) as u64),
                report::bytes(median(|s| s.rss_rise.into()) as u64),
                format!("{fewest_answered}/{n}"),
                report::median(&drops).unwrap_or(0).to_string(),
            ]);
        }
    }
    let mut out = format!(
        "Each request waits {delay_ms} ms at the server; all N are in flight at once. Every run is a fresh process.\n\
         wall, CPU time (the client process: user + system), peak RSS and RSS rise (peak minus the RSS when the\n\
         run began) are medians over `runs`; \"answered\" is the worst run.\n\
         \"listen overflows\" (TcpExt ListenOverflows, whole machine) counts handshake packets dropped because\n\
         the server's accept queue was full: a SYN (the client's kernel sends it again 1 s later, then 3 s,\n\
         7 s after the first try) or the handshake's last ACK (the client's connect() already returned; the\n\
         server's kernel resends its SYN-ACK after 1 s). One connection can be counted more than once.\n\n{table}"
    );
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    Ok(out)
}
// ANCHOR_END: table

/// How many handshake packets were dropped because a listener's accept
/// queue was full (`TcpExt: ListenOverflows` in `/proc/net/netstat`, for the
/// whole network namespace since boot).
///
/// The kernel counts two cases: a SYN dropped on arrival (`tcp_conn_request`
/// in `net/ipv4/tcp_input.c`; the client's kernel sends it again after 1 s,
/// then 3 s, 7 s after the first try) and the handshake's last ACK dropped
/// (`tcp_v4_syn_recv_sock` in `net/ipv4/tcp_ipv4.c`; the client's `connect`
/// has already returned, and the server's kernel resends its SYN-ACK after
/// 1 s). So it counts packets, not connections: one slow connection can
/// add several.
pub fn listen_overflows() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next(), tcp_ext.next());
    let missing = || io::Error::new(io::ErrorKind::InvalidData, "no TcpExt ListenOverflows in /proc/net/netstat");
    let (names, values) = names.zip(values).ok_or_else(missing)?;
    let index = names.split_whitespace().position(|name| name == "ListenOverflows").ok_or_else(missing)?;
    values.split_whitespace().nth(index).and_then(|v| v.parse().ok()).ok_or_else(missing)
}

/// Five runs where they are cheap, three where a run holds thousands of
/// sockets (and its wall time depends on which handshakes the server dropped).
pub fn runs_for(n: usize) -> usize {
    match n {
        0..=100 => 5,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ch01_os_threads::delay_server::DelayServer;

    #[test]
    fn a_sample_survives_the_trip_through_a_line() -> io::Result<()> {
        let sample = Sample {
            wall: Duration::from_millis(512),
            cpu: Duration::from_micros(4_880),
            peak_rss: 2_600_000,
            rss_rise: 4096,
            answered: 99,
            first_error: Some("GET /1/x from 127.0.0.1:9: refused".into()),
        };
        let back = Sample::from_line(&sample.to_line())?;
        assert_eq!(format!("{back:?}"), format!("{sample:?}"));
        let clean = Sample { first_error: None, ..sample };
        assert_eq!(Sample::from_line(&clean.to_line())?.first_error, None);
        assert!(Sample::from_line("12 nonsense").is_err());
        Ok(())
    }

    #[test]
    fn the_listen_overflow_counter_is_readable() {
        assert!(listen_overflows().is_ok());
    }

    #[test]
    fn every_approach_answers_every_request() -> io::Result<()> {
        let server = DelayServer::start(Config::default())?;
        for approach in Approach::ALL {
            let sample = run(approach, server.addr(), 20, 10)?;
            assert_eq!(sample.answered, 20, "{}: {:?}", approach.name(), sample.first_error);
            assert!(sample.first_error.is_none());
            assert!(sample.peak_rss > 0);
        }
        server.shutdown()?;
        Ok(())
    }
}
