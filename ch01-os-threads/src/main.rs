//! # Chapter 1: OS threads
//!
//! Run it: `cargo run -p ch01-os-threads`
//!
//! The demo starts its own delay server on 127.0.0.1 and then shows, with a
//! timestamp on every line:
//!
//! 1. a few slow requests made one after another: the waits add up;
//! 2. the same requests, one OS thread each: the waits overlap, and the
//!    whole takes as long as the slowest (concurrency);
//! 3. CPU-bound work split over the machine's CPUs (parallelism);
//! 4. a raw `write` system call through `libc`: the OS's public API.
//!
//! Other commands: `serve` (a standalone delay server for workshops), `bench`
//! (what threads cost; use `--release`), `--help`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config, DelayServer, DemoServer};
use ch01_os_threads::report::{Spread, bytes, duration};
use ch01_os_threads::trace::section;
use ch01_os_threads::{bench_kit, cli, client, http, measure, report, say, syscall, trace};

const HELP: &str = "\
ch01-os-threads: concurrency and parallelism with OS threads

USAGE:
    cargo run -p ch01-os-threads [-- COMMAND]

COMMANDS:
    (none)     the guided demo: slow requests one after another, then one
               thread each; CPU work on every core; a system call by hand
    serve      a standalone delay server (options below), for workshops
    bench      what threads cost: spawn, switch, memory, how many fit
               (use --release for real numbers; --json: one JSON object
               per figure and line instead of the table)
    --help     this text

SERVE OPTIONS:
    --host H               address to listen on (default 127.0.0.1;
                           0.0.0.0 for every interface)
    --port N               port (default 8080; 0 lets the OS choose)
    --max-connections N    connections served at once; more get 503 (default 1024)

    The server answers GET /<delay_ms>/<message> with <message> after
    <delay_ms> milliseconds, e.g.  curl http://127.0.0.1:8080/200/hello

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
";

// ANCHOR: requests
/// The demo's requests: (message, delay in ms). Add, remove or change any:
/// every count and total the demo prints is computed from this list.
const REQUESTS: &[(&str, u64)] = &[("one", 400), ("two", 100), ("three", 300), ("four", 200), ("five", 150)];
// ANCHOR_END: requests

fn main() -> ExitCode {
    trace::start();
    cli::quiet_closed_pipes();
    cli::exit_code(run(std::env::args().skip(1).collect()))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(),
        Some("serve") => serve(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some(bench_kit::SERVE) => Ok(bench_kit::serve_delay_server()?),
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

    let n = REQUESTS.len();
    let sum: u64 = REQUESTS.iter().map(|(_, delay)| delay).sum();
    let longest = REQUESTS.iter().map(|(_, delay)| *delay).max().unwrap_or(0);

    section(1, &format!("{n} requests, one after another, on one thread"));
    let took = sequential(server.addr())?;
    say!("main", "all {n} took {} ms: about the SUM of the delays ({sum} ms)", took.as_millis());

    section(2, &format!("the same {n} requests, one OS thread each"));
    let took = one_thread_each(server.addr())?;
    say!("main", "all {n} took {} ms: about the LONGEST delay ({longest} ms)", took.as_millis());
    say!("main", "the threads spent their time waiting, not computing: that is concurrency");

    section(3, "CPU-bound work: one thread, then one thread per CPU");
    parallel_work()?;

    section(4, "a system call by hand");
    raw_write()?;
    Ok(())
}

// ANCHOR: sequential
/// Each `get` blocks this thread until its answer arrives, so the waits add up.
fn sequential(addr: SocketAddr) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for &(message, delay) in REQUESTS {
        say!("main", "GET {}", http::path(delay, message));
        let body = client::get(addr, &http::path(delay, message))?.into_ok_body()?;
        say!("main", "got {body:?}");
    }
    Ok(start.elapsed())
}
// ANCHOR_END: sequential

/// When one request's thread started and finished, relative to the start.
struct Span {
    /// The thread's number (1 for the first started).
    thread: usize,
    /// The body it got.
    message: String,
    /// When it sent its request.
    start: Duration,
    /// When it had the answer.
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
        .map(|(n, &(message, delay))| {
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

/// Draws when each thread was waiting: about 40 marks for the longest
/// span, so any delays fit on a line.
fn print_timeline(mut spans: Vec<Span>) {
    spans.sort_by_key(|span| span.thread);
    let last = spans.iter().map(|span| span.end.as_millis()).max().unwrap_or(0);
    // A round number of milliseconds per mark, so the scale is easy to read.
    let steps = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000];
    let ms_per_mark = steps.into_iter().find(|&step| last <= step * 40).unwrap_or(last.div_ceil(40).max(1));
    let width = (last / ms_per_mark + 1) as usize;
    let name_width = spans.iter().map(|span| span.message.len()).max().unwrap_or(0);
    say!("main", "timeline, one # per {ms_per_mark} ms (threads in the order they were started):");
    for span in &spans {
        let (from, to) = (span.start.as_millis() / ms_per_mark, span.end.as_millis() / ms_per_mark);
        let bar = format!("{}{}", " ".repeat(from as usize), "#".repeat((to - from).max(1) as usize));
        let (thread, message, done) = (span.thread, &span.message, span.end.as_millis());
        say!("main", "  thread {thread:>2} |{bar:<width$}| {message:<name_width$} done at {done:>4} ms");
    }
}

// ANCHOR: parallel
/// Counts the primes among `numbers` by trial division: pure CPU work, no waiting.
fn count_primes(numbers: impl Iterator<Item = u64>) -> usize {
    numbers.filter(|&n| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)).count()
}

/// The same work on one thread, then split over one thread per CPU.
fn parallel_work() -> anyhow::Result<()> {
    // Small enough for a debug build to finish in well under a second.
    const LIMIT: u64 = 300_000;
    // The CPUs this thread may run on: *logical* CPUs, so a core running two
    // hardware threads (hyper-threading, SMT) counts twice, though its two
    // threads share one core's execution units (and a cgroup CPU quota can
    // lower the number; see `available_parallelism`'s docs).
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    // One thread per CPU. Try `cpus * 4`: more threads, no more CPUs.
    let threads = cpus;

    let start = Instant::now();
    let alone = count_primes(0..LIMIT);
    let one_thread = start.elapsed();
    say!("main", "1 thread: {alone} primes below {LIMIT} in {} ms", one_thread.as_millis());

    // Thread k takes every `threads`-th number starting at k, so each gets a
    // fair share of the big (slow) numbers.
    let start = Instant::now();
    let together: usize = thread::scope(|scope| {
        let workers: Vec<_> =
            (0..threads as u64).map(|k| scope.spawn(move || count_primes((k..LIMIT).step_by(threads)))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let all_threads = start.elapsed();
    say!("main", "{threads} threads: {together} primes below {LIMIT} in {} ms", all_threads.as_millis());
    if together != alone {
        bail!("the threads counted {together} primes but one thread counted {alone}");
    }
    let speedup = one_thread.as_secs_f64() / all_threads.as_secs_f64().max(1e-9);
    // Say what the numbers show, even when they do not show what we hoped.
    let meaning = if cpus == 1 {
        "one CPU: threads can take turns (concurrency) but never compute at the same instant"
    } else if speedup >= 1.3 {
        "the threads computed at the same instant on different CPUs: that is parallelism"
    } else {
        "little speed-up: the other CPUs were busy with other programs (look at `top`, run again)"
    };
    say!("main", "speed-up {speedup:.1}x with {threads} threads on {cpus} CPUs: {meaning}");
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
    let written = syscall!(unsafe { libc::write(libc::STDOUT_FILENO, message.as_ptr().cast(), message.len()) })
        .context("write(2) to stdout")?;
    say!("main", "write(1, {} bytes) returned {written}: a system call is the OS's public API", message.len());
    say!("main", "try `strace -f -e trace=write cargo run -q -p ch01-os-threads` to see every println! do the same");
    Ok(())
}
// ANCHOR_END: raw_write

/// `serve`: a standalone delay server until Ctrl-C.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let options = cli::ServeOptions::parse(args)?;
    let mut config = Config { addr: options.addr, log_requests: true, ..Config::default() };
    config.max_connections = options.max_connections.unwrap_or(config.max_connections);
    let server = DelayServer::start(config)?;
    say!("server", "delay server listening on {}", server.addr());
    cli::print_serve_hints(server.addr());
    // The accept loop and the connections run on their own threads; this one
    // has nothing left to do but stay alive.
    loop {
        thread::park();
    }
}

/// `bench [--json]`: what OS threads cost, as one table (or JSON lines).
fn bench(args: &[String]) -> anyhow::Result<()> {
    let (json, rest) = report::json_flag(args);
    if let Some(other) = rest.first() {
        return Err(cli::unknown("bench option", other));
    }
    const RUNS: usize = 5;
    const SMALL_STACK: usize = 64 * 1024;
    const STD_STACK: usize = 2 * 1024 * 1024;
    const SPAWNS: usize = 2_000;
    const HAND_OVERS: usize = 20_000;
    const PARKED: usize = 1_000;
    const MAX_THREADS: usize = 30_000;
    let legend = format!(
        "medians of {RUNS} runs (with the smallest and largest where runs differ a lot); memory measured \
         with {PARKED} threads parked at once"
    );
    if !json {
        println!("{}", report::machine());
        println!("{}", report::wrap(&legend, 100, ""));
    }
    let mut figures = report::Figures::new("ch01");
    let mut progress = bench_kit::Progress::new(5 * RUNS + 3);
    let mut step = |what: &str| {
        progress.start(what);
        progress.finish_step();
    };
    let small = bytes(SMALL_STACK as u64);

    let mut table = report::Table::new(&["measurement", "result", "what it means"]);
    // Pinned to one CPU the numbers are steady. Unpinned, the kernel sometimes
    // starts the new thread on another CPU, and waking it there costs more
    // (a lot more in a virtual machine), so that row swings between runs:
    // its min-max says by how much.
    let mut spread = |what: &str, f: &dyn Fn() -> std::io::Result<Duration>| {
        report::spread_of(RUNS, || {
            step(what);
            f()
        })
    };
    let spawn_small =
        spread("spawn + join, small stack", &|| measure::on_one_cpu(|| measure::spawn_join(SPAWNS, SMALL_STACK)))?;
    let spawn_std =
        spread("spawn + join, std stack", &|| measure::on_one_cpu(|| measure::spawn_join(SPAWNS, STD_STACK)))?;
    let spawn_any_cpu = spread("spawn + join, any CPU", &|| measure::spawn_join(SPAWNS, SMALL_STACK))?;
    let same_cpu = spread("hand-over, same CPU", &|| measure::ping_pong(HAND_OVERS, true))?;
    let two_cpus = spread("hand-over, any CPU", &|| measure::ping_pong(HAND_OVERS, false))?;
    let spawn_std_label = format!("spawn + join, {} stack, same CPU", bytes(STD_STACK as u64));
    figures
        .times(&format!("spawn + join, {small} stack, same CPU"), spawn_small)
        .times(&spawn_std_label, spawn_std)
        .times(&format!("spawn + join, {small} stack, any CPU"), spawn_any_cpu)
        .times("hand-over between 2 threads, same CPU", same_cpu)
        .times("hand-over between 2 threads, any CPU", two_cpus);
    table.row(&[
        format!("spawn + join, {small} stack, same CPU"),
        timing(spawn_small),
        "a kernel task, a fresh signal stack (glibc reuses the stack), run, tear down".into(),
    ]);
    table.row(&[
        spawn_std_label,
        timing(spawn_std),
        "the stack size barely matters: it is only reserved (and reused)".into(),
    ]);
    table.row(&[
        format!("spawn + join, {small} stack, any CPU"),
        timing(spawn_any_cpu),
        "the new thread may start on another CPU".into(),
    ]);
    table.row(&["hand-over between 2 threads, same CPU".into(), timing(same_cpu), "wake + OS context switch".into()]);
    table.row(&["hand-over between 2 threads, any CPU".into(), timing(two_cpus), "may also wake another CPU".into()]);

    for stack in [SMALL_STACK, STD_STACK] {
        step(&format!("memory of {PARKED} parked threads"));
        let memory = measure::memory_per_parked_thread(PARKED, stack)?;
        let label = bytes(stack as u64);
        figures
            .bytes(&format!("virtual memory per thread, {label} stack"), memory.virtual_per_thread)
            .bytes(&format!("resident memory per thread, {label} stack"), memory.resident_per_thread)
            .bytes(&format!("kernel stack per thread, {label} stack"), memory.kernel_stack_per_thread);
        table.row(&[
            format!("virtual memory per thread, {label} stack"),
            bytes(memory.virtual_per_thread),
            "reserved: stack + guard page (glibc), signal stack + guard page (std)".into(),
        ]);
        table.row(&[
            format!("resident memory per thread, {label} stack"),
            bytes(memory.resident_per_thread),
            "RAM really used: only the touched pages".into(),
        ]);
        table.row(&[
            format!("kernel stack per thread, {label} stack"),
            bytes(memory.kernel_stack_per_thread),
            "the kernel's own, not in VmSize or VmRSS (KernelStack, whole machine)".into(),
        ]);
    }

    step(&format!("how many threads fit (up to {MAX_THREADS})"));
    let limit = measure::max_threads(MAX_THREADS, SMALL_STACK)?;
    let why = match &limit.stopped_because {
        measure::LimitReason::Cap => "stopped at the bench's cap".to_string(),
        measure::LimitReason::MapCount { max, in_use } => {
            format!("stopped near vm.max_map_count = {max} ({in_use} mappings in use)")
        }
        measure::LimitReason::SpawnFailed(e) => format!("the OS refused the next one: {e}"),
    };
    let held_label = format!("most threads held at once, {small} stacks");
    figures.push(report::Figure::new("ch01", &held_label, limit.held as f64, "count").with_note(why.clone()));
    table.row(&[held_label, limit.held.to_string(), why]);
    drop(progress);
    if json {
        print!("{}", figures.to_json_lines());
    } else {
        print!("{table}");
    }
    Ok(())
}

/// The median, with the range beside it when the runs differ by more than
/// a fifth (a row that swings says so instead of hiding it in a median).
fn timing(spread: Spread<Duration>) -> String {
    if spread.max.as_secs_f64() > spread.min.as_secs_f64() * 1.2 {
        format!("{} ({} to {})", duration(spread.median), duration(spread.min), duration(spread.max))
    } else {
        duration(spread.median)
    }
}
