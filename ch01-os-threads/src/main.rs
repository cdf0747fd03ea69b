//! # Chapter 1: OS threads
//!
//! Run it: `cargo run -p ch01-os-threads`
//!
//! The demo starts its own delay server on 127.0.0.1 and then shows, with a
//! timestamp on every line:
//!
//! 1. five slow requests made one after another: the waits add up;
//! 2. the same five requests, one OS thread each: the waits overlap, and the
//!    whole takes as long as the slowest (concurrency);
//! 3. CPU-bound work split over the machine's CPUs (parallelism);
//! 4. a raw `write` system call through `libc`: the OS's public API.
//!
//! Other commands: `serve` (a standalone delay server for workshops), `bench`
//! (what threads cost; use `--release`), `--help`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config, DelayServer, DemoServer};
use ch01_os_threads::{client, http, measure, report, say, trace};

const HELP: &str = "\
ch01-os-threads: concurrency and parallelism with OS threads

USAGE:
    cargo run -p ch01-os-threads                     the guided demo
    cargo run -p ch01-os-threads -- serve [OPTIONS]  a standalone delay server
    cargo run --release -p ch01-os-threads -- bench  what threads cost, as a table
    cargo run -p ch01-os-threads -- --help           this text

SERVE OPTIONS:
    --host H               address to listen on (default 127.0.0.1)
    --port N               port (default 8080; 0 lets the OS choose)
    --max-connections N    connections served at once; more get 503 (default 1024)

The delay server answers GET /<delay_ms>/<message> with <message> after
<delay_ms> milliseconds, e.g.  curl http://127.0.0.1:8080/200/hello

ENVIRONMENT:
    DELAY_SERVER=host:port   make the demos use that server instead of
                             starting their own (for workshops)
";

/// The five requests of the demo: (message, delay in ms).
const REQUESTS: [(&str, u64); 5] = [("one", 400), ("two", 100), ("three", 300), ("four", 200), ("five", 150)];

fn main() -> anyhow::Result<()> {
    trace::start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => demo(),
        Some("serve") => serve(&args[1..]),
        Some("bench") => bench(),
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

    let sum: u64 = REQUESTS.iter().map(|(_, delay)| delay).sum();
    let longest = REQUESTS.iter().map(|(_, delay)| *delay).max().unwrap_or(0);

    println!("\n--- 1. five requests, one after another, on one thread ---");
    let took = sequential(server.addr())?;
    say!("main", "all five took {} ms: about the SUM of the delays ({sum} ms)", took.as_millis());

    println!("\n--- 2. the same five requests, one OS thread each ---");
    let took = one_thread_each(server.addr())?;
    say!("main", "all five took {} ms: about the LONGEST delay ({longest} ms)", took.as_millis());
    say!("main", "the threads spent their time waiting, not computing: that is concurrency");

    println!("\n--- 3. CPU-bound work: one thread, then one thread per CPU ---");
    parallel_work()?;

    println!("\n--- 4. a system call by hand ---");
    raw_write()?;
    Ok(())
}

// ANCHOR: sequential
/// Each `get` blocks this thread until its answer arrives, so the waits add up.
fn sequential(addr: SocketAddr) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for (message, delay) in REQUESTS {
        say!("main", "GET {}", http::path(delay, message));
        let body = client::get(addr, &http::path(delay, message))?.into_ok_body()?;
        say!("main", "got {body:?}");
    }
    Ok(start.elapsed())
}
// ANCHOR_END: sequential

/// When one request's thread started and finished, relative to the start.
struct Span {
    thread: usize,
    message: String,
    start: Duration,
    end: Duration,
}

// ANCHOR: one_thread_each
/// One thread per request: each thread blocks on its own request, and the OS
/// runs whichever thread has something to do. The waits overlap.
fn one_thread_each(addr: SocketAddr) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let (done, finished) = mpsc::channel();
    let threads: Vec<_> = (1..)
        .zip(REQUESTS)
        .map(|(n, (message, delay))| {
            let done = done.clone();
            thread::Builder::new().name(format!("request-{n}")).spawn(move || -> std::io::Result<()> {
                let begun = start.elapsed();
                say!(format!("thread {n}"), "GET {}", http::path(delay, message));
                let body = client::get(addr, &http::path(delay, message))?.into_ok_body()?;
                say!(format!("thread {n}"), "got {body:?}");
                let _ = done.send(Span { thread: n, message: body, start: begun, end: start.elapsed() });
                Ok(())
            })
        })
        .collect::<Result<_, _>>()?;
    for thread in threads {
        thread.join().map_err(|_| anyhow::anyhow!("a request thread panicked"))??;
    }
    let took = start.elapsed();
    drop(done);
    print_timeline(finished.iter().collect());
    Ok(took)
}
// ANCHOR_END: one_thread_each

/// Draws when each thread was waiting, one `#` per 20 ms.
fn print_timeline(mut spans: Vec<Span>) {
    const MS_PER_MARK: u128 = 20;
    spans.sort_by_key(|span| span.thread);
    say!("main", "timeline, one # per {MS_PER_MARK} ms (threads in the order they were started):");
    for span in &spans {
        let (from, to) = (span.start.as_millis() / MS_PER_MARK, span.end.as_millis() / MS_PER_MARK);
        let bar = format!("{}{}", " ".repeat(from as usize), "#".repeat((to - from).max(1) as usize));
        say!("main", "  thread {} |{bar:<22}| {:<5} done at {:>3} ms", span.thread, span.message, span.end.as_millis());
    }
}

// ANCHOR: parallel
/// Counts the primes among `numbers` by trial division: pure CPU work, no waiting.
fn count_primes(numbers: impl Iterator<Item = u64>) -> usize {
    numbers.filter(|&n| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)).count()
}

/// The same work on one thread, then split over one thread per core.
fn parallel_work() -> anyhow::Result<()> {
    // Small enough for a debug build to finish in well under a second.
    const LIMIT: u64 = 300_000;
    // The CPUs this thread may run on: *logical* CPUs, so a core running two
    // hardware threads (hyper-threading, SMT) counts twice, though its two
    // threads share one core's execution units (and a cgroup CPU quota can
    // lower the number; see `available_parallelism`'s docs).
    let cores = thread::available_parallelism().map_or(1, |n| n.get());

    let start = Instant::now();
    let alone = count_primes(0..LIMIT);
    let one_thread = start.elapsed();
    say!("main", "1 thread: {alone} primes below {LIMIT} in {} ms", one_thread.as_millis());

    // Thread k takes every `cores`-th number starting at k, so each gets a
    // fair share of the big (slow) numbers.
    let start = Instant::now();
    let together: usize = thread::scope(|scope| {
        let workers: Vec<_> =
            (0..cores as u64).map(|k| scope.spawn(move || count_primes((k..LIMIT).step_by(cores)))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let all_threads = start.elapsed();
    say!("main", "{cores} threads: {together} primes below {LIMIT} in {} ms", all_threads.as_millis());
    if together != alone {
        bail!("the threads counted {together} primes but one thread counted {alone}");
    }
    let speedup = one_thread.as_secs_f64() / all_threads.as_secs_f64().max(1e-9);
    // Say what the numbers show, even when they do not show what we hoped.
    let meaning = if cores == 1 {
        "one CPU: threads can take turns (concurrency) but never compute at the same instant"
    } else if speedup >= 1.3 {
        "the threads computed at the same instant on different CPUs: that is parallelism"
    } else {
        "little speed-up: the other CPUs were busy with other programs (look at `top`, run again)"
    };
    say!("main", "speed-up {speedup:.1}x on {cores} CPUs: {meaning}");
    Ok(())
}
// ANCHOR_END: parallel

// ANCHOR: raw_write
/// `println!` ends in the `write` system call; here we make that call ourselves.
fn raw_write() -> anyhow::Result<()> {
    let message = "hello from write(2): fd 1 is stdout, the kernel does the rest\n";
    // Our own `println!`s sit in Rust's stdout buffer; flush them first so the
    // lines come out in order.
    std::io::stdout().flush()?;
    // SAFETY: the pointer and length describe `message`, which is alive and
    // unchanged for the whole call; fd 1 is open (it is our stdout) and the
    // kernel only reads those bytes.
    let written = unsafe { libc::write(libc::STDOUT_FILENO, message.as_ptr().cast(), message.len()) };
    if written < 0 {
        return Err(std::io::Error::last_os_error()).context("write(2) to stdout");
    }
    say!("main", "write(1, {} bytes) returned {written}: a system call is the OS's public API", message.len());
    say!("main", "try `strace -f -e trace=write cargo run -q -p ch01-os-threads` to see every println! do the same");
    Ok(())
}
// ANCHOR_END: raw_write

/// `serve`: a standalone delay server until Ctrl-C.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let mut host = "127.0.0.1".to_string();
    let mut port: u16 = 8080;
    let mut config = Config { log_requests: true, ..Config::default() };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n\n{HELP}"));
        match flag.as_str() {
            "--host" => host = value()?.clone(),
            "--port" => port = value()?.parse().context("--port takes a number from 0 to 65535")?,
            "--max-connections" => {
                config.max_connections = value()?.parse().context("--max-connections takes a number")?;
            }
            _ => bail!("unknown option {flag:?}\n\n{HELP}"),
        }
    }
    config.addr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .with_context(|| format!("--host {host:?} is not an IP address"))?;
    let server = DelayServer::start(config)?;
    say!("server", "delay server listening on {}", server.addr());
    say!("server", "try: curl http://{}/200/hello", server.addr());
    say!("server", "learners: DELAY_SERVER={} cargo run -p ch03-epoll", server.addr());
    say!("server", "press Ctrl-C to stop");
    // The accept loop and the connections run on their own threads; this one
    // has nothing left to do but stay alive.
    loop {
        thread::park();
    }
}

/// `bench`: what OS threads cost, as one table.
fn bench() -> anyhow::Result<()> {
    const RUNS: usize = 5;
    const SMALL_STACK: usize = 64 * 1024;
    const STD_STACK: usize = 2 * 1024 * 1024;
    println!("{}", report::machine());
    println!("medians of {RUNS} runs; memory measured with 1 000 threads parked at once\n");

    let mut table = report::Table::new(&["measurement", "result", "what it means"]);
    // Pinned to one CPU the numbers are steady. Unpinned, the kernel sometimes
    // starts the new thread on the other CPU, and waking it there costs more
    // (a lot more in a virtual machine), so that row jumps between runs.
    let spawn_one_cpu = |stack| report::median_of(RUNS, || measure::on_one_cpu(|| measure::spawn_join(2_000, stack)));
    let (spawn_small, spawn_std) = (spawn_one_cpu(SMALL_STACK)?, spawn_one_cpu(STD_STACK)?);
    let spawn_any_cpu = report::median_of(RUNS, || measure::spawn_join(2_000, SMALL_STACK))?;
    table.row(&[
        "spawn + join, 64 KiB stack, same CPU",
        &report::duration(spawn_small),
        "a kernel task, a fresh signal stack (glibc reuses the stack), run, tear down",
    ]);
    table.row(&[
        "spawn + join, 2 MiB stack, same CPU",
        &report::duration(spawn_std),
        "the stack size barely matters: it is only reserved (and reused)",
    ]);
    table.row(&[
        "spawn + join, 64 KiB stack, any CPU",
        &report::duration(spawn_any_cpu),
        "the new thread may start on the other CPU",
    ]);

    let same_cpu = report::median_of(RUNS, || measure::ping_pong(20_000, true))?;
    let two_cpus = report::median_of(RUNS, || measure::ping_pong(20_000, false))?;
    table.row(&["hand-over between 2 threads, same CPU", &report::duration(same_cpu), "wake + OS context switch"]);
    table.row(&["hand-over between 2 threads, any CPU", &report::duration(two_cpus), "may also wake the other CPU"]);

    for stack in [SMALL_STACK, STD_STACK] {
        let memory = measure::memory_per_parked_thread(1_000, stack)?;
        let label = report::bytes(stack as u64);
        table.row(&[
            &format!("virtual memory per thread, {label} stack"),
            &report::bytes(memory.virtual_per_thread),
            "reserved: stack + guard page (glibc), signal stack + guard page (std)",
        ]);
        table.row(&[
            &format!("resident memory per thread, {label} stack"),
            &report::bytes(memory.resident_per_thread),
            "RAM really used: only the touched pages",
        ]);
        table.row(&[
            &format!("kernel stack per thread, {label} stack"),
            &report::bytes(memory.kernel_stack_per_thread),
            "the kernel's own, not in VmSize or VmRSS (KernelStack, whole machine)",
        ]);
    }

    let limit = measure::max_threads(30_000, SMALL_STACK)?;
    let why = match &limit.stopped_because {
        measure::LimitReason::Cap => "stopped at the bench's cap".to_string(),
        measure::LimitReason::MapCount { max, in_use } => {
            format!("stopped near vm.max_map_count = {max} ({in_use} mappings in use)")
        }
        measure::LimitReason::SpawnFailed(e) => format!("the OS refused the next one: {e}"),
    };
    table.row(&["most threads held at once, 64 KiB stacks", &limit.held.to_string(), &why]);
    print!("{table}");
    Ok(())
}
