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
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::report::{self, Figures, Table};
use ch01_os_threads::trace::say_aside;
use ch01_os_threads::{http, measure, sys};
use ch05_runtime::server::{AsyncDelayServer, Config};
use ch05_runtime::time::sleep;
use ch05_runtime::{Runtime, channel, spawn};

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

/// `bench [--quick] [--json]`: the table, or with `--json` the same figures
/// as one JSON object per line (what the bench says on the way then goes to
/// stderr).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (json, args) = report::json_flag(args);
    let sizes = match args.as_slice() {
        [] => FULL,
        [flag] if flag == "--quick" => QUICK,
        _ => bail!("bench takes no arguments but --quick (small sizes, for a smoke test) and --json"),
    };
    let limit = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let gets_fit = sizes.gets as u64 + 100 <= limit;
    if !json {
        println!("{}", report::machine());
    }
    // Every cell of the table, also as a figure for --json.
    let mut figures = Figures::new("ch05");
    let steps = 3 * 2 + 1 + 2 * SLOW_RUNS + 1 + if gets_fit { GETS.len() * SLOW_RUNS } else { 0 };
    let mut progress = Progress::new(steps);
    let mut table = Table::new(&["work", "ch05, 1 thread", "ch05, 2 workers", "earlier chapters, same work"]);

    // In this process: the cost of one operation, on both executors.
    let mut both = |what: &str, n: usize, f: fn(Flavor, usize) -> io::Result<Duration>| -> anyhow::Result<_> {
        let mut cells = Vec::new();
        for flavor in [Flavor::Single, Flavor::Multi] {
            progress.start(&format!("{what}, {flavor:?}"));
            let per_op = report::median_of(RUNS, || f(flavor, n))? / n.max(1) as u32;
            figures.time(&format!("{what}, per operation, {flavor:?}"), per_op);
            cells.push(report::duration(per_op));
            progress.finish_step();
        }
        Ok(cells)
    };
    let spawn = both("spawn + complete", sizes.tasks, spawn_complete)?;
    let yields = both("yield", sizes.yields, yield_loop)?;
    let ping = both("ping-pong", sizes.round_trips, ping_pong)?;
    progress.start("chapters 1 and 2 doing the same");
    let thread_spawn = report::median_of(RUNS, || measure::on_one_cpu(|| measure::spawn_join(1_000, 64 * 1024)))?;
    let fiber_spawn = report::median_of(RUNS, || fibers::spawn_join(sizes.tasks.min(100_000)))?;
    let fiber_yield = report::median_of(RUNS, || fibers::yield_round_trip(sizes.yields))?;
    let thread_hand_over = report::median_of(RUNS, || measure::ping_pong(sizes.round_trips.min(20_000), true))?;
    progress.finish_step();
    figures
        .time("ch02 fiber spawn + join", fiber_spawn)
        .time("ch01 OS thread spawn + join", thread_spawn)
        .time("ch02 fiber yield there and back", fiber_yield)
        .time("ch01 two OS threads on one CPU, round trip", thread_hand_over * 2);
    let d = report::duration;
    table.row(&[
        format!("spawn + complete, per task ({} tasks)", sizes.tasks),
        spawn[0].clone(),
        spawn[1].clone(),
        format!("ch02 fiber spawn + join {}; ch01 OS thread {}", d(fiber_spawn), d(thread_spawn)),
    ]);
    table.row(&[
        format!("yield: one wake + poll ({} times)", sizes.yields),
        yields[0].clone(),
        yields[1].clone(),
        format!("ch02 fiber yield there and back {}", d(fiber_yield)),
    ]);
    table.row(&[
        format!("ping-pong over a channel, per round trip ({})", sizes.round_trips),
        ping[0].clone(),
        ping[1].clone(),
        format!("ch01 two OS threads on one CPU {}", d(thread_hand_over * 2)),
    ]);

    // Fresh processes: many sleeping tasks at once.
    let mut walls = Vec::new();
    let mut memory = Vec::new();
    for what in ["sleeps-single", "sleeps-multi"] {
        let samples = runs_in_children(&mut progress, &[what, &sizes.sleeps.to_string()])?;
        let (wall, per_task) = (median(&samples, |s| s.wall), median(&samples, |s| s.rss_rise) / sizes.sleeps as u64);
        figures
            .time(&format!("{} {what}: wall", sizes.sleeps), wall)
            .bytes(&format!("{what}: memory per task"), per_task);
        walls.push(d(wall));
        memory.push(report::bytes(per_task));
    }
    progress.start("a parked OS thread and a parked fiber");
    let thread_memory = measure::memory_per_parked_thread(1_000, 64 * 1024)?;
    let fibers_parked = sizes.sleeps.min(10_000);
    let fiber = bench_kit::run_in_child(&["fibers".to_string(), fibers_parked.to_string()])?;
    progress.finish_step();
    figures
        .bytes("ch02 parked fiber: memory", fiber.rss_rise / fibers_parked as u64)
        .bytes("ch01 parked OS thread: memory", thread_memory.resident_per_thread);
    table.row(&[
        format!("{} tasks sleeping {DELAY_MS} ms at once: wall", sizes.sleeps),
        walls[0].clone(),
        walls[1].clone(),
        String::new(),
    ]);
    table.row(&[
        "  memory per sleeping task".to_string(),
        memory[0].clone(),
        memory[1].clone(),
        format!(
            "ch02 parked fiber {}; ch01 parked OS thread {}",
            report::bytes(fiber.rss_rise / fibers_parked as u64),
            report::bytes(thread_memory.resident_per_thread)
        ),
    ]);

    // Fresh processes against this chapter's async server in another one.
    if gets_fit {
        let server = BenchServer::from_env_or_child().context("starting the async delay server")?;
        let mut cells = Vec::new();
        for what in GETS {
            let args = [what, &sizes.gets.to_string(), &server.addr.to_string()];
            let samples = runs_in_children(&mut progress, &args)?;
            let failed: usize = samples.iter().map(|s| sizes.gets - s.outcome.answered).sum();
            let cell = format!("{} {what}", sizes.gets);
            figures
                .time(&format!("{cell}: wall"), median(&samples, |s| s.wall))
                .time(&format!("{cell}: CPU time"), median(&samples, |s| s.cpu))
                .number(
                    &format!("{cell}: listen overflows"),
                    median(&samples, |s| s.outcome.polls.unwrap_or(0)) as f64,
                    "count",
                )
                .number(&format!("{cell}: failed"), failed as f64, "count");
            let failed = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
            cells.push([
                d(median(&samples, |s| s.wall)) + &failed,
                d(median(&samples, |s| s.cpu)),
                median(&samples, |s| s.outcome.polls.unwrap_or(0)).to_string(),
            ]);
        }
        for (row, what) in ["wall", "CPU time", "listen overflows"].iter().enumerate() {
            let label = match row {
                0 => format!("{} GETs at once, {DELAY_MS} ms each: wall", sizes.gets),
                _ => format!("  {what}"),
            };
            let earlier = format!("ch04 coroutines {}; ch03 epoll loop {}", cells[2][row], cells[3][row]);
            table.row(&[label, cells[0][row].clone(), cells[1][row].clone(), earlier]);
        }
        progress.clear();
        say_aside(json, "main", &format!("the GETs went to the {}", server.describe()));
    } else {
        progress.clear();
        let skip =
            format!("skipping {} GETs: the open-files limit {limit} is too low (raise `ulimit -Hn`)", sizes.gets);
        say_aside(json, "main", &skip);
    }
    if json {
        print!("{}", figures.to_json_lines());
        return Ok(());
    }
    print!("{table}");
    let legend = format!(
        "Medians: {RUNS} runs in this process for the first three rows; {SLOW_RUNS} runs, each in a fresh \
         process, for the others. Memory per task: the rise of the process's resident memory during the run \
         (its peak minus where it started), divided by the tasks. Listen overflows: handshake packets dropped \
         because the server's accept queue was full (TcpExt ListenOverflows, whole machine). The server is \
         this chapter's async one, in a child process of its own."
    );
    print!("{}", report::wrap(&legend, 100, ""));
    Ok(())
}

/// The concurrent-GET runs: ours on both executors, then chapters 4 and 3.
const GETS: [&str; 4] = ["gets-single", "gets-multi", "gets-ch04", "gets-ch03"];

/// [`SLOW_RUNS`] runs of `bench-run <args>`, each in a fresh process. The
/// listen overflows during each run go into `outcome.polls`, the sample's
/// spare number (these runs have no poll count of their own).
fn runs_in_children(progress: &mut Progress, args: &[&str]) -> anyhow::Result<Vec<Sample>> {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let mut samples = Vec::new();
    for run in 1..=SLOW_RUNS {
        progress.start(&format!("{} run {run}/{SLOW_RUNS}", args.join(" ")));
        let before = bench_kit::listen_overflows().unwrap_or(0);
        let mut sample = bench_kit::run_in_child(&args)?;
        sample.outcome.polls = Some(bench_kit::listen_overflows().unwrap_or(0).saturating_sub(before));
        samples.push(sample);
        progress.finish_step();
    }
    Ok(samples)
}

/// The median of one number over samples.
fn median<T: Copy + Ord + Default>(samples: &[Sample], f: impl Fn(&Sample) -> T) -> T {
    report::median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or_default()
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

    use ch02_green_threads::{Config, run, spawn, yield_now};

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

/// The hidden [`bench_kit::RUN`] subcommand: one run in this fresh process,
/// printed as one sample line.
pub fn run_one(args: &[String]) -> anyhow::Result<()> {
    let (what, n, addr) = match args {
        [what, n] => (what.as_str(), n.parse::<usize>()?, None),
        [what, n, addr] => (what.as_str(), n.parse::<usize>()?, Some(addr.parse::<SocketAddr>()?)),
        _ => bail!("usage: {} <what> <n> [addr]", bench_kit::RUN),
    };
    sys::raise_open_files_limit()?;
    let path = http::path(DELAY_MS, "x");
    let sample = bench_kit::measure_run(|| {
        let answered = match (what, addr) {
            ("sleeps-single", None) => sleeps(Flavor::Single, n)?,
            ("sleeps-multi", None) => sleeps(Flavor::Multi, n)?,
            ("fibers", None) => fibers::parked(n).map(|()| n)?,
            ("gets-single", Some(addr)) => gets(Flavor::Single, addr, &path, n)?,
            ("gets-multi", Some(addr)) => gets(Flavor::Multi, addr, &path, n)?,
            ("gets-ch04", Some(addr)) => gets_ch04(addr, &path, n)?,
            ("gets-ch03", Some(addr)) => {
                let paths = vec![path.clone(); n];
                let results = ch03_epoll::client::get_all(addr, &paths, Duration::from_secs(60), |_| {})?;
                results.iter().filter(|r| r.as_ref().is_ok_and(|response| response.status == 200)).count()
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unknown bench run {what:?}"))),
        };
        Ok(Outcome { answered, ..Outcome::default() })
    })?;
    bench_kit::print_sample(&sample)?;
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

/// The hidden [`bench_kit::SERVE`] subcommand: this chapter's async server,
/// sized for the largest N, until the parent lets go.
pub fn serve_for_bench() -> anyhow::Result<()> {
    sys::raise_open_files_limit()?;
    let config = Config {
        max_connections: bench_kit::SERVER_MAX_CONNECTIONS,
        backlog: 65_535, // the kernel caps it at net.core.somaxconn
        idle_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let server = AsyncDelayServer::start(config)?;
    bench_kit::announce_and_wait(server.addr())?;
    server.shutdown()?;
    Ok(())
}
