//! Measurement plumbing for every chapter's `bench` subcommand. Not part of
//! what the chapters teach: it keeps numbers apart and honest, and no
//! chapter's library needs it (each binary's `src/bench.rs` uses it).
//!
//! Processes keep the numbers apart:
//!
//! - The **delay server runs in a child process** ([`ChildServer`]): this
//!   same binary, started again with the hidden subcommand [`SERVE`]. The
//!   binary answers it with a server of its choice (chapter 1's blocking one
//!   through [`serve_delay_server`], a later chapter's own) and calls
//!   [`announce_and_wait`]. Its threads, sockets, CPU time and memory are
//!   then not mixed into the clients', and do not count against their limits.
//! - **Each measured run is a fresh process** ([`run_in_child`], hidden
//!   subcommand [`RUN`]): a process keeps memory it has freed (the allocator
//!   holds on to it, glibc caches exited threads' stacks), so a run measured
//!   after another in the same process would carry the earlier run's memory
//!   in its peak. The child measures with [`measure_run`] and prints one
//!   [`Sample`] line ([`Sample::to_line`]) for the parent to read.
//!
//! `DELAY_SERVER=host:port` replaces the child server with an external one
//! ([`BenchServer::from_env_or_child`]), as for the demos.

use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::delay_server::{Config, DelayServer, DemoServer};
use crate::measure::{self, ProcStatus};
use crate::sys;

/// The hidden subcommand that runs the bench's server in a child process.
pub const SERVE: &str = "bench-serve";

/// The hidden subcommand that makes one measured run in a fresh process.
pub const RUN: &str = "bench-run";

/// How many connections the bench's delay server holds at once: above the
/// largest N any chapter's bench sends.
pub const SERVER_MAX_CONNECTIONS: usize = 12_000;

/// Chapter 1's delay server, sized for 10 000 connections at once.
pub fn delay_server_config() -> Config {
    Config {
        max_connections: SERVER_MAX_CONNECTIONS,
        // A handler parses one request and waits; 64 KiB is plenty, and
        // 10 000 of them reserve 640 MiB of address space instead of 20 GiB.
        stack_size: 64 * 1024,
        // Ask for a deep accept queue; the kernel caps it at net.core.somaxconn.
        backlog: 65_535,
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

/// The child's side of [`SERVE`] for chapter 1's delay server: raises the
/// open-file limit, starts the server with [`delay_server_config`], and
/// serves until the parent lets go ([`announce_and_wait`]).
pub fn serve_delay_server() -> io::Result<()> {
    sys::raise_open_files_limit()?;
    let server = DelayServer::start(delay_server_config())?;
    announce_and_wait(server.addr())?;
    server.shutdown()?;
    Ok(())
}

/// The child's side of [`SERVE`], for any server: prints `addr` as the first
/// line of stdout, then blocks until stdin ends (the parent closes it when it
/// is done, or dies). The caller then shuts its server down.
pub fn announce_and_wait(addr: SocketAddr) -> io::Result<()> {
    println!("{addr}");
    io::stdout().flush()?;
    io::stdin().read_to_end(&mut Vec::new())?;
    Ok(())
}

/// The bench's server in a child process: this same binary, run again with
/// [`SERVE`] (its `main` must answer that subcommand, see the module docs).
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
            .arg(SERVE)
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
                format!("the bench's server process printed {first_line:?}, not its address"),
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
        // Its shutdown is bounded (chapter 1's grace period is 5 s); give it
        // a little more, then stop it the hard way rather than leave it behind.
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

/// Where a bench sends its requests: the instructor's server from
/// `DELAY_SERVER`, or one in a child process.
#[derive(Debug)]
pub struct BenchServer {
    /// The server's address.
    pub addr: SocketAddr,
    /// Its connection cap, if we started it (an external one is unknown).
    pub max_connections: Option<usize>,
    /// The child process, while we run one.
    child: Option<ChildServer>,
}

impl BenchServer {
    /// `DELAY_SERVER=host:port` if set, otherwise a [`ChildServer`].
    pub fn from_env_or_child() -> io::Result<BenchServer> {
        match DemoServer::external()? {
            Some(addr) => Ok(BenchServer { addr, max_connections: None, child: None }),
            None => {
                let child = ChildServer::start()?;
                Ok(BenchServer {
                    addr: child.addr(),
                    max_connections: Some(SERVER_MAX_CONNECTIONS),
                    child: Some(child),
                })
            }
        }
    }

    /// One line saying which server this is.
    pub fn describe(&self) -> String {
        match &self.child {
            Some(child) => format!("delay server in child process {} at {}", child.id(), self.addr),
            None => format!("using the delay server at {} (from {})", self.addr, DemoServer::ENV),
        }
    }
}

/// What a measured run reports besides time and memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Requests answered `200 OK` with the right body.
    pub answered: usize,
    /// The first failure, if any request failed.
    pub first_error: Option<String>,
    /// How many times an executor polled a task, for approaches that have
    /// an executor (chapter 4 on).
    pub polls: Option<u64>,
}

/// One measured run, as [`measure_run`] makes it and [`Sample::to_line`] prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// From the start of the run to its end.
    pub wall: Duration,
    /// CPU time the process used during the run (user + system, all threads).
    pub cpu: Duration,
    /// The highest resident set size during the run (`VmHWM`).
    pub peak_rss: u64,
    /// How far the resident set rose above where it was when the run began.
    pub rss_rise: u64,
    /// What the run itself reported.
    pub outcome: Outcome,
}

/// Runs `run` and measures it: wall time, CPU time, peak RSS (reset first,
/// so the peak is this run's) and the rise of RSS above where it began.
pub fn measure_run(run: impl FnOnce() -> io::Result<Outcome>) -> io::Result<Sample> {
    measure::reset_peak_rss()?;
    let rss_before = ProcStatus::read()?.resident_bytes;
    let cpu_before = measure::cpu_time()?;
    let started = Instant::now();
    let outcome = run()?;
    let wall = started.elapsed();
    let cpu = measure::cpu_time()?.saturating_sub(cpu_before);
    let peak_rss = ProcStatus::read()?.peak_resident_bytes;
    Ok(Sample { wall, cpu, peak_rss, rss_rise: peak_rss.saturating_sub(rss_before), outcome })
}

impl Sample {
    /// The sample as one line of text, for a child process to print:
    /// `wall_ns cpu_ns peak_rss rss_rise answered polls-or-- first_error-or--`.
    pub fn to_line(&self) -> String {
        let polls = self.outcome.polls.map_or("-".to_string(), |p| p.to_string());
        let error = self.outcome.first_error.as_deref().unwrap_or("-").replace('\n', " ");
        format!(
            "{} {} {} {} {} {polls} {error}",
            self.wall.as_nanos(),
            self.cpu.as_nanos(),
            self.peak_rss,
            self.rss_rise,
            self.outcome.answered
        )
    }

    /// Reads back what [`to_line`](Self::to_line) wrote.
    pub fn from_line(line: &str) -> io::Result<Sample> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("not a bench sample: {line:?}"));
        let mut parts = line.trim().splitn(7, ' ');
        let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok()).ok_or_else(bad);
        let (wall, cpu, peak_rss, rss_rise, answered) = (number()?, number()?, number()?, number()?, number()?);
        let polls = match parts.next().ok_or_else(bad)? {
            "-" => None,
            p => Some(p.parse().map_err(|_| bad())?),
        };
        let error = parts.next().ok_or_else(bad)?;
        Ok(Sample {
            wall: Duration::from_nanos(wall),
            cpu: Duration::from_nanos(cpu),
            peak_rss,
            rss_rise,
            outcome: Outcome {
                answered: answered as usize,
                first_error: (error != "-").then(|| error.to_string()),
                polls,
            },
        })
    }
}

/// The child's side of [`RUN`]: prints the sample as the last line of stdout.
pub fn print_sample(sample: &Sample) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", sample.to_line())?;
    stdout.flush()
}

/// The parent's side of [`RUN`]: runs this binary again as
/// `<exe> bench-run <args...>` and reads the [`Sample`] it prints last.
pub fn run_in_child(args: &[String]) -> io::Result<Sample> {
    run_in_child_with_lines(args).map(|(sample, _)| sample)
}

/// [`run_in_child`], also returning the lines the child printed before its
/// sample (figures of its own, e.g. chapter 3's system call counts).
pub fn run_in_child_with_lines(args: &[String]) -> io::Result<(Sample, Vec<String>)> {
    let output = Command::new(std::env::current_exe()?).arg(RUN).args(args).stderr(Stdio::inherit()).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "the run `{RUN} {}` failed ({}): {stdout}",
            args.join(" "),
            output.status
        )));
    }
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let sample = Sample::from_line(&lines.pop().unwrap_or_default())?;
    Ok((sample, lines))
}

/// How many handshake packets were dropped because a listener's accept
/// queue was full (`TcpExt: ListenOverflows` in `/proc/net/netstat`, for the
/// whole network namespace since boot). Read it before and after a run for
/// the difference.
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

/// Progress of a long bench on one line of stderr that updates in place
/// (`[bench] 7/33  epoll N=1000 run 2/3`). Prints nothing when stderr is not
/// a terminal (a log file would get a line per update).
#[derive(Debug)]
pub struct Progress {
    /// Steps in the whole bench.
    total: usize,
    /// Steps finished.
    done: usize,
    /// Whether stderr is a terminal.
    live: bool,
}

impl Progress {
    /// A progress line for `total` steps.
    pub fn new(total: usize) -> Progress {
        Progress { total, done: 0, live: io::stderr().is_terminal() }
    }

    /// Shows that step `done + 1` of `total`, described by `what`, is running.
    pub fn start(&mut self, what: &str) {
        if self.live {
            // \r: back to the start of the line; \x1b[K: clear what was there.
            eprint!("\r\x1b[K[bench] {}/{}  {what}", self.done + 1, self.total);
        }
    }

    /// Marks the current step finished.
    pub fn finish_step(&mut self) {
        self.done += 1;
    }

    /// Clears the line, so the table prints on a clean one.
    pub fn clear(&self) {
        if self.live {
            eprint!("\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_sample_survives_the_trip_through_a_line() -> io::Result<()> {
        let sample = Sample {
            wall: Duration::from_millis(512),
            cpu: Duration::from_micros(4_880),
            peak_rss: 2_600_000,
            rss_rise: 4096,
            outcome: Outcome {
                answered: 99,
                first_error: Some("GET /1/x from 127.0.0.1:9: refused\nby the kernel".into()),
                polls: Some(301),
            },
        };
        // A newline would end the line early: it travels as a space.
        let mut expected = sample.clone();
        expected.outcome.first_error = Some("GET /1/x from 127.0.0.1:9: refused by the kernel".into());
        assert_eq!(Sample::from_line(&sample.to_line())?, expected);
        let clean = Sample { outcome: Outcome { first_error: None, polls: None, ..sample.outcome }, ..sample };
        assert_eq!(Sample::from_line(&clean.to_line())?, clean);
        assert!(Sample::from_line("12 nonsense").is_err());
        assert!(Sample::from_line("1 2 3 4 5 x -").is_err(), "polls must be a number or -");
        Ok(())
    }

    #[test]
    fn measure_run_counts_the_memory_a_run_touches() -> io::Result<()> {
        const TOUCHED: usize = 8 * 1024 * 1024;
        let sample = measure_run(|| {
            let block = vec![1u8; TOUCHED]; // written, so every page becomes resident
            std::hint::black_box(&block);
            Ok(Outcome { answered: 1, ..Outcome::default() })
        })?;
        assert!(sample.rss_rise >= TOUCHED as u64 / 2, "{sample:?}");
        assert!(sample.peak_rss >= sample.rss_rise);
        assert_eq!(sample.outcome.answered, 1);
        Ok(())
    }

    #[test]
    fn a_full_listen_queue_shows_in_listen_overflows() -> io::Result<()> {
        // A listener that never accepts, with the smallest queue the kernel
        // allows (backlog 0 holds one finished handshake). Every connect
        // beyond what the queue holds is dropped, and counted. The counter is
        // for the whole machine, so other programs can only make it rise more.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        syscall_listen(listener.as_raw_fd(), 0)?;
        let before = listen_overflows()?;
        let mut clients = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while listen_overflows()? == before {
            assert!(Instant::now() < deadline, "ListenOverflows never rose above {before}");
            if clients.len() < 16 {
                // Non-blocking, so a dropped handshake does not hold us up.
                let client = TcpStream::connect_timeout(&listener.local_addr()?, Duration::from_millis(1));
                clients.push(client);
            } else {
                thread::yield_now();
            }
        }
        Ok(())
    }

    fn syscall_listen(fd: std::os::fd::RawFd, backlog: i32) -> io::Result<()> {
        // SAFETY: `fd` is a socket the caller owns; listen takes no pointers.
        crate::syscall!(unsafe { libc::listen(fd, backlog) })?;
        Ok(())
    }
}
