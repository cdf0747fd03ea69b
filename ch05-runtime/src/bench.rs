//! `bench`: what a task costs, next to what the earlier chapters pay for the
//! same work, in one table.
//!
//! - spawn + complete, yield (one wake + poll), ping-pong over a channel:
//!   in this process, medians of [`RUNS`] runs, on both executors, next to
//!   chapter 1's OS threads and chapter 2's fibers doing the same;
//! - 100 000 concurrent sleeps: each run a fresh process (`bench-run`), so
//!   its peak resident memory is its own; next to the memory of a parked OS
//!   thread and of a parked fiber;
//! - 10 000 concurrent GETs to the async delay server, which runs in a child
//!   process of its own (`serve-for-bench`): our tasks on both executors,
//!   chapter 4's coroutines and chapter 3's epoll loop, each in a fresh process.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ch01_os_threads::measure::{self, ProcStatus};
use ch01_os_threads::report::{self, Table};
use ch01_os_threads::{http, say};
use ch05_runtime::server::{AsyncDelayServer, Config};
use ch05_runtime::time::sleep;
use ch05_runtime::{Runtime, channel, spawn};

/// Hidden subcommand: the async delay server in a child process.
pub const SERVE_FOR_BENCH: &str = ch03_epoll::bench::SERVE_FOR_BENCH;
/// Hidden subcommand: one measured run in a fresh process.
pub const RUN_ONE: &str = "bench-run";

/// Runs per measurement; the table shows the median.
const RUNS: usize = 5;
/// Runs for the measurements that take a second or more each.
const SLOW_RUNS: usize = 3;
/// How long every GET waits at the server, and every sleep sleeps.
const DELAY_MS: u64 = 1_000;

/// The sizes of the work; `--quick` (for tests) makes everything small.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    tasks: usize,
    yields: usize,
    round_trips: usize,
    sleeps: usize,
    gets: usize,
}

const FULL: Sizes = Sizes { tasks: 1_000_000, yields: 1_000_000, round_trips: 200_000, sleeps: 100_000, gets: 10_000 };
const QUICK: Sizes = Sizes { tasks: 2_000, yields: 2_000, round_trips: 1_000, sleeps: 200, gets: 50 };

/// The executors measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Single,
    Multi,
}

impl Flavor {
    fn runtime(self) -> io::Result<Runtime> {
        match self {
            Flavor::Single => Runtime::new(),
            Flavor::Multi => Runtime::builder().worker_threads(2).build(),
        }
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let sizes = match args {
        [] => FULL,
        [flag] if flag == "--quick" => QUICK,
        _ => bail!("bench takes no arguments but --quick (small sizes, for a smoke test)"),
    };
    let limit = ch03_epoll::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    println!("{}", report::machine());
    let mut table = Table::new(&["work", "ch05, 1 thread", "ch05, 2 workers", "earlier chapters, same work"]);
    let mut progress = Progress::default();

    // In this process: per-operation costs.
    let per = |d: Duration, n: usize| report::duration(d / n.max(1) as u32);
    let mut both = |what: &str, n: usize, f: fn(Flavor, usize) -> io::Result<Duration>| -> anyhow::Result<_> {
        let mut cells = Vec::new();
        for flavor in [Flavor::Single, Flavor::Multi] {
            progress.say(&format!("{what} ({flavor:?})"));
            cells.push(per(report::median_of(RUNS, || f(flavor, n))?, n));
        }
        Ok(cells)
    };
    let spawn_cells = both("spawn + complete", sizes.tasks, spawn_complete)?;
    let yield_cells = both("yield", sizes.yields, yield_loop)?;
    let ping_cells = both("ping-pong", sizes.round_trips, ping_pong)?;
    progress.say("chapter 1 and 2 for the same work");
    let thread_spawn = report::median_of(RUNS, || measure::on_one_cpu(|| measure::spawn_join(1_000, 64 * 1024)))?;
    let fiber_spawn = report::median_of(RUNS, || fibers::spawn_join(sizes.tasks.min(100_000)))?;
    let fiber_yield = report::median_of(RUNS, || fibers::yield_round_trip(sizes.yields))?;
    let thread_hand_over = report::median_of(RUNS, || measure::ping_pong(sizes.round_trips.min(20_000), true))?;
    table.row(&[
        format!("spawn + complete, per task ({} tasks)", sizes.tasks),
        spawn_cells[0].clone(),
        spawn_cells[1].clone(),
        format!(
            "ch02 fiber spawn + join {}; ch01 OS thread spawn + join {}",
            report::duration(fiber_spawn),
            report::duration(thread_spawn)
        ),
    ]);
    table.row(&[
        format!("yield: one wake + poll of a task ({} times)", sizes.yields),
        yield_cells[0].clone(),
        yield_cells[1].clone(),
        format!("ch02 fiber yield, there and back {}", report::duration(fiber_yield)),
    ]);
    table.row(&[
        format!("ping-pong over a channel, per round trip ({})", sizes.round_trips),
        ping_cells[0].clone(),
        ping_cells[1].clone(),
        format!("ch01 two OS threads, one CPU: {}", report::duration(thread_hand_over * 2)),
    ]);

    // Fresh processes: memory per sleeping task.
    let mut cells = Vec::new();
    for approach in ["sleeps-single", "sleeps-multi"] {
        progress.say(&format!("{} concurrent sleeps ({approach})", sizes.sleeps));
        let samples =
            (0..SLOW_RUNS).map(|_| run_child(&[approach, &sizes.sleeps.to_string()])).collect::<Result<Vec<_>, _>>()?;
        let wall = report::median(&samples.iter().map(|s| s.wall).collect::<Vec<_>>()).unwrap_or_default();
        let bytes = report::median(&samples.iter().map(|s| s.peak_added).collect::<Vec<_>>()).unwrap_or(0);
        cells.push(format!("{}, {} per task", report::duration(wall), report::bytes(bytes / sizes.sleeps as u64)));
    }
    progress.say("memory of a parked OS thread and a parked fiber");
    let thread_memory = measure::memory_per_parked_thread(1_000, 64 * 1024)?;
    let fiber = run_child(&["fibers", &sizes.sleeps.min(10_000).to_string()])?;
    table.row(&[
        format!("{} tasks sleeping {DELAY_MS} ms at once: wall, memory", sizes.sleeps),
        cells[0].clone(),
        cells[1].clone(),
        format!(
            "resident per parked fiber (ch02) {}, per parked OS thread (ch01) {}",
            report::bytes(fiber.peak_added / sizes.sleeps.min(10_000) as u64),
            report::bytes(thread_memory.resident_per_thread)
        ),
    ]);

    // Fresh processes against the async server in another: concurrent GETs.
    if sizes.gets as u64 + 100 > limit {
        say!("main", "skipping {} GETs: the open-files limit {limit} is too low (raise `ulimit -Hn`)", sizes.gets);
    } else {
        // Chapter 3's child-process protocol: this binary, re-run with
        // `serve-for-bench`, prints its address and serves until stdin closes.
        let server =
            ch03_epoll::bench::ChildServer::start().context("starting the async delay server in a child process")?;
        let mut cells = Vec::new();
        for approach in ["gets-single", "gets-multi", "gets-ch04", "gets-ch03"] {
            progress.say(&format!("{} GETs ({approach})", sizes.gets));
            let mut samples = Vec::new();
            for _ in 0..SLOW_RUNS {
                let before = ch03_epoll::bench::listen_overflows().unwrap_or(0);
                let mut sample = run_child(&[approach, &sizes.gets.to_string(), &server.addr().to_string()])?;
                sample.overflows = ch03_epoll::bench::listen_overflows().unwrap_or(0).saturating_sub(before);
                samples.push(sample);
            }
            let median =
                |f: fn(&Sample) -> u64| report::median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0);
            let failed: u64 = samples.iter().map(|s| s.failed).sum();
            cells.push(format!(
                "{} wall, {} CPU, {} overflows{}",
                report::duration(Duration::from_nanos(median(|s| s.wall.as_nanos() as u64))),
                report::duration(Duration::from_nanos(median(|s| s.cpu.as_nanos() as u64))),
                median(|s| s.overflows),
                if failed > 0 { format!(", {failed} failed") } else { String::new() }
            ));
        }
        table.row(&[
            format!("{} GETs at once, {DELAY_MS} ms each", sizes.gets),
            cells[0].clone(),
            cells[1].clone(),
            format!("ch04 coroutines {}; ch03 epoll loop {}", cells[2], cells[3]),
        ]);
    }
    progress.done();
    print!("{table}");
    println!(
        "(medians: {RUNS} runs in this process for the first three rows, {SLOW_RUNS} fresh processes each for the \
         others; memory = peak RSS added during the run / tasks;\n overflows = handshakes the server's full accept \
         queue dropped (TcpExtListenOverflows, whole machine); the server is this chapter's, in a child process)"
    );
    Ok(())
}

/// One line on stderr, rewritten in place: what the bench is doing now.
#[derive(Default)]
struct Progress {
    step: usize,
}

impl Progress {
    fn say(&mut self, what: &str) {
        self.step += 1;
        eprint!("\r\x1b[K[bench] step {}: {what} ...", self.step);
        let _ = io::stderr().flush();
    }

    fn done(&self) {
        eprint!("\r\x1b[K");
    }
}

// ANCHOR: yield_now
/// Returns `Pending` once, after waking its own task: the smallest possible
/// trip through the scheduler (wake, queue, poll).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
// ANCHOR_END: yield_now

// ANCHOR: bench_spawn
/// `n` tasks spawned and run to completion; the last one to finish tells
/// `block_on` (through a channel), so nothing polls in a loop meanwhile.
fn spawn_complete(flavor: Flavor, n: usize) -> io::Result<Duration> {
    let runtime = flavor.runtime()?;
    let started = Instant::now();
    runtime.block_on(async move {
        let left = Arc::new(AtomicUsize::new(n));
        let (done, mut all_done) = channel::channel::<()>();
        for _ in 0..n {
            let (left, done) = (Arc::clone(&left), done.clone());
            drop(spawn(async move {
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _ = done.send(());
                }
            }));
        }
        all_done.recv().await;
    });
    Ok(started.elapsed())
}
// ANCHOR_END: bench_spawn

/// One task yielding `n` times.
fn yield_loop(flavor: Flavor, n: usize) -> io::Result<Duration> {
    let runtime = flavor.runtime()?;
    let started = Instant::now();
    runtime.block_on(async move {
        spawn(async move {
            for _ in 0..n {
                YieldNow(false).await
            }
        })
        .await
    })?;
    Ok(started.elapsed())
}

/// Two tasks sending a number back and forth `n` times over two channels.
fn ping_pong(flavor: Flavor, n: usize) -> io::Result<Duration> {
    let runtime = flavor.runtime()?;
    let started = Instant::now();
    runtime.block_on(async move {
        let (to_b, mut b_gets) = channel::channel::<usize>();
        let (to_a, mut a_gets) = channel::channel::<usize>();
        let b = spawn(async move {
            while let Some(ball) = b_gets.recv().await {
                let _ = to_a.send(ball);
            }
        });
        let a = spawn(async move {
            for ball in 0..n {
                let _ = to_b.send(ball);
                a_gets.recv().await;
            }
        });
        let (_, _) = (a.await, b.await);
    });
    Ok(started.elapsed())
}

/// Chapter 2's fibers doing the same work, through its library.
mod fibers {
    use std::io;
    use std::time::{Duration, Instant};

    use ch02_green_threads::runtime::{Config, run, spawn, yield_now};

    /// Average spawn + join of an empty fiber (stacks come from the free list).
    pub fn spawn_join(n: usize) -> io::Result<Duration> {
        run(Config::default(), || {
            spawn(|| ())?.join().map_err(io::Error::other)?; // warm up: the first stack is always fresh
            let started = Instant::now();
            for _ in 0..n {
                spawn(|| ())?.join().map_err(io::Error::other)?;
            }
            Ok(started.elapsed() / n.max(1) as u32)
        })?
    }

    /// Average yield there and back between two fibers.
    pub fn yield_round_trip(n: usize) -> io::Result<Duration> {
        run(Config::default(), || {
            let partner = spawn(move || (0..n).for_each(|_| yield_now()))?;
            let started = Instant::now();
            (0..n).for_each(|_| yield_now());
            let elapsed = started.elapsed();
            partner.join().map_err(io::Error::other)?;
            Ok(elapsed / n.max(1) as u32)
        })?
    }

    /// `n` fibers parked at once (each has run up to its first yield), then joined.
    pub fn parked(n: usize) -> io::Result<()> {
        run(Config::default(), || {
            let fibers = (0..n).map(|_| spawn(yield_now)).collect::<io::Result<Vec<_>>>()?;
            yield_now(); // every fiber has run up to its yield: all n stacks are in use
            for fiber in fibers {
                fiber.join().map_err(io::Error::other)?;
            }
            Ok(())
        })?
    }
}

/// One measured run's numbers, as a child prints them on one line.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_added: u64,
    failed: u64,
    overflows: u64,
}

/// Runs `bench-run <args>` in a fresh process and reads its line:
/// `<wall ns> <cpu ns> <peak RSS added> <failed>`.
fn run_child(args: &[&str]) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let output = Command::new(exe).arg(RUN_ONE).args(args).stderr(Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the bench run {args:?} failed ({}): {text}", output.status);
    }
    let numbers: Vec<u64> = text.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    let [wall, cpu, peak_added, failed] = numbers[..] else { bail!("unexpected bench-run output {text:?}") };
    Ok(Sample { wall: Duration::from_nanos(wall), cpu: Duration::from_nanos(cpu), peak_added, failed, overflows: 0 })
}

/// The hidden [`RUN_ONE`] subcommand: one run, one line of numbers.
pub fn run_one(args: &[String]) -> anyhow::Result<()> {
    let (what, n, addr) = match args {
        [what, n] => (what.as_str(), n.parse::<usize>()?, None),
        [what, n, addr] => (what.as_str(), n.parse::<usize>()?, Some(addr.parse::<SocketAddr>()?)),
        _ => bail!("usage: {RUN_ONE} <what> <n> [addr]"),
    };
    ch03_epoll::raise_open_files_limit()?;
    let before = ProcStatus::read()?.resident_bytes;
    let cpu_before = measure::cpu_time()?;
    let started = Instant::now();
    let path = http::path(DELAY_MS, "x");
    let ok = match (what, addr) {
        ("sleeps-single", None) => sleeps(Flavor::Single, n)?,
        ("sleeps-multi", None) => sleeps(Flavor::Multi, n)?,
        ("fibers", None) => fibers::parked(n).map(|()| n)?,
        ("gets-single", Some(addr)) => gets(Flavor::Single, addr, &path, n)?,
        ("gets-multi", Some(addr)) => gets(Flavor::Multi, addr, &path, n)?,
        ("gets-ch04", Some(addr)) => gets_ch04(addr, &path, n)?,
        ("gets-ch03", Some(addr)) => {
            let results = ch03_epoll::client::get_all(addr, &vec![path.clone(); n], Duration::from_secs(60), |_| {})?;
            results.iter().filter(|r| r.as_ref().is_ok_and(|response| response.status == 200)).count()
        }
        _ => bail!("unknown bench run {what:?}"),
    };
    let wall = started.elapsed();
    let cpu = measure::cpu_time()?.saturating_sub(cpu_before);
    let peak = ProcStatus::read()?.peak_resident_bytes;
    println!("{} {} {} {}", wall.as_nanos(), cpu.as_nanos(), peak.saturating_sub(before), n - ok);
    Ok(())
}

// ANCHOR: bench_sleeps
/// `n` tasks, each sleeping [`DELAY_MS`] at the same time.
fn sleeps(flavor: Flavor, n: usize) -> io::Result<usize> {
    let runtime = flavor.runtime()?;
    Ok(runtime.block_on(async move {
        let handles: Vec<_> = (0..n).map(|_| spawn(sleep(Duration::from_millis(DELAY_MS)))).collect();
        let mut ok = 0;
        for handle in handles {
            ok += usize::from(handle.await.is_ok());
        }
        ok
    }))
}
// ANCHOR_END: bench_sleeps

/// `n` concurrent GETs, one task each.
fn gets(flavor: Flavor, addr: SocketAddr, path: &str, n: usize) -> io::Result<usize> {
    let runtime = flavor.runtime()?;
    let path: Arc<str> = Arc::from(path);
    Ok(runtime.block_on(async move {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let path = Arc::clone(&path);
                spawn(async move { ch05_runtime::http::get(addr, &path).await.is_ok_and(|r| r.status == 200) })
            })
            .collect();
        let mut ok = 0;
        for handle in handles {
            ok += usize::from(handle.await.unwrap_or(false));
        }
        ok
    }))
}

/// The same GETs as chapter 4's coroutines on chapter 4's executor.
fn gets_ch04(addr: SocketAddr, path: &str, n: usize) -> io::Result<usize> {
    use ch04_coroutines::combinators::then;
    use ch04_coroutines::future::ready;
    use ch04_coroutines::http::HttpGetFuture;
    use ch04_coroutines::log::Log;
    use ch04_coroutines::runtime::Executor;
    let ok = std::rc::Rc::new(std::cell::Cell::new(0));
    let tasks: Vec<Box<dyn ch04_coroutines::future::Future<Output = ()>>> = (0..n)
        .map(|_| {
            let ok = std::rc::Rc::clone(&ok);
            let task = then(HttpGetFuture::new(addr, path), move |body: io::Result<String>| {
                ok.set(ok.get() + usize::from(body.is_ok()));
                ready(())
            });
            Box::new(task) as Box<dyn ch04_coroutines::future::Future<Output = ()>>
        })
        .collect();
    Executor::new(&Log::silent())?.run(tasks)?;
    Ok(ok.get())
}

/// The hidden [`SERVE_FOR_BENCH`] subcommand: the async server, its address
/// on stdout's first line, until stdin closes.
pub fn serve_for_bench() -> anyhow::Result<()> {
    ch03_epoll::raise_open_files_limit()?;
    let config =
        Config { max_connections: 20_000, backlog: 65_535, idle_timeout: Duration::from_secs(60), ..Config::default() };
    let server = AsyncDelayServer::start(config)?;
    println!("{}", server.addr());
    io::stdout().flush()?;
    io::stdin().read_to_end(&mut Vec::new())?;
    server.shutdown()?;
    Ok(())
}
