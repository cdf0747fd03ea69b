//! `bench`: what a task costs, next to what the earlier chapters pay for the
//! same work, in one table.
//!
//! - spawn + complete, yield (one wake + poll), ping-pong over a channel:
//!   in this process, medians of [`RUNS`] runs, on both executors, next to
//!   chapter 1's OS threads and chapter 2's fibers doing the same; each also
//!   without the fairness checks (no budget, the injector and the driver
//!   looked at only when nothing else is ready), so their cost shows, and
//!   the yield with the slow-poll detector timing every poll;
//! - the lateness of a 1 ms timer beside a task that yields in a loop:
//!   median and largest of [`LATE_SAMPLES`] sleeps;
//! - 100 000 concurrent sleeps: each run a fresh process (`bench-run`), so
//!   its peak resident memory is its own; next to the memory of a parked OS
//!   thread and of a parked fiber;
//! - 10 000 concurrent GETs to the async delay server, which runs in a child
//!   process of its own (`serve-for-bench`): our tasks on both executors,
//!   chapter 4's coroutines and chapter 3's epoll loop, each in a fresh process.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::report::{self, Figures, Table};
use ch01_os_threads::trace::say_aside;
use ch01_os_threads::{http, measure, sys};
use ch05_runtime::server::{AsyncDelayServer, Config};
use ch05_runtime::time::sleep;
use ch05_runtime::{IoDriver, Runtime, channel, spawn, yield_now};

/// Runs per measurement; the table shows the median.
const RUNS: usize = 5;
/// Sleeps per runtime kind for the lateness row.
const LATE_SAMPLES: usize = 200;
/// Runs for the measurements that take a second or more each.
const SLOW_RUNS: usize = 3;

/// The sizes of the work; `--quick` (for tests) makes everything small.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// How long every GET waits at the server, and every sleep sleeps (ms).
    delay_ms: u64,
    tasks: usize,
    yields: usize,
    late_samples: usize,
    round_trips: usize,
    sleeps: usize,
    gets: usize,
}

const FULL: Sizes = Sizes {
    delay_ms: 1_000,
    tasks: 1_000_000,
    yields: 1_000_000,
    late_samples: LATE_SAMPLES,
    round_trips: 200_000,
    sleeps: 100_000,
    gets: 10_000,
};
const QUICK: Sizes =
    Sizes { delay_ms: 50, tasks: 2_000, yields: 2_000, late_samples: 5, round_trips: 1_000, sleeps: 200, gets: 50 };

/// The runtimes measured: single-threaded with the process's reactor
/// thread, single-threaded driving its own reactor (tokio's way), and two
/// worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Single,
    OwnReactor,
    Multi,
}

/// What the executor checks on top of running tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// The defaults of a release build: budget, intervals; no poll timing.
    Fair,
    /// No budget, and the injector and the driver looked at only when
    /// nothing else is ready: what the fairness checks cost, by difference.
    None,
    /// The defaults plus the slow-poll detector (two clock reads a poll).
    Timed,
}

/// One runtime kind with one set of checks.
#[derive(Debug, Clone, Copy)]
struct Setup {
    flavor: Flavor,
    checks: Checks,
}

impl Setup {
    fn runtime(self) -> io::Result<Runtime> {
        let builder = match self.flavor {
            Flavor::Single => Runtime::builder(),
            Flavor::OwnReactor => Runtime::builder().io_driver(IoDriver::ExecutorThread),
            Flavor::Multi => Runtime::builder().worker_threads(2),
        };
        match self.checks {
            Checks::Fair => builder,
            Checks::None => builder.coop_budget(None).injector_interval(u32::MAX).driver_interval(u32::MAX),
            Checks::Timed => builder.slow_poll_threshold(Some(Duration::from_millis(10))),
        }
        .build()
    }
}

impl Flavor {
    /// In the table's column order.
    const ALL: [Flavor; 3] = [Flavor::Single, Flavor::OwnReactor, Flavor::Multi];

    fn runtime(self) -> io::Result<Runtime> {
        Setup { flavor: self, checks: Checks::Fair }.runtime()
    }

    /// The word for `bench-run` arguments.
    fn id(self) -> &'static str {
        match self {
            Flavor::Single => "single",
            Flavor::OwnReactor => "own-reactor",
            Flavor::Multi => "multi",
        }
    }

    fn from_id(id: &str) -> Option<Flavor> {
        Flavor::ALL.into_iter().find(|flavor| flavor.id() == id)
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
    let flavors = Flavor::ALL.len();
    let steps = 8 * flavors + 1 + (flavors + 1) * SLOW_RUNS + if gets_fit { (flavors + 2) * SLOW_RUNS } else { 0 };
    let mut progress = Progress::new(steps);
    let mut table = Table::new(&[
        "work",
        "ch05: reactor thread",
        "ch05: own reactor",
        "ch05: 2 workers",
        "earlier chapters, same work",
    ]);
    let d = report::duration;

    // In this process: the cost of one operation, on each runtime.
    let mut each =
        |what: &str, checks: Checks, n: usize, f: fn(Setup, usize) -> io::Result<Duration>| -> anyhow::Result<_> {
            let mut cells = Vec::new();
            for flavor in Flavor::ALL {
                let name = match checks {
                    Checks::Fair => format!("{what}, per operation, {}", flavor.id()),
                    Checks::None => format!("{what} without fairness checks, per operation, {}", flavor.id()),
                    Checks::Timed => format!("{what} with slow-poll timing, per operation, {}", flavor.id()),
                };
                progress.start(&name);
                let per_op = report::median_of(RUNS, || f(Setup { flavor, checks }, n))? / n.max(1) as u32;
                figures.time(&name, per_op);
                cells.push(d(per_op));
                progress.finish_step();
            }
            Ok(cells)
        };
    let spawn = each("spawn + complete", Checks::Fair, sizes.tasks, spawn_complete)?;
    let spawn_unchecked = each("spawn + complete", Checks::None, sizes.tasks, spawn_complete)?;
    let yields = each("yield", Checks::Fair, sizes.yields, yield_loop)?;
    let yields_unchecked = each("yield", Checks::None, sizes.yields, yield_loop)?;
    let yields_timed = each("yield", Checks::Timed, sizes.yields, yield_loop)?;
    let ping = each("ping-pong", Checks::Fair, sizes.round_trips, ping_pong)?;
    let ping_unchecked = each("ping-pong", Checks::None, sizes.round_trips, ping_pong)?;
    let mut late = (Vec::new(), Vec::new());
    for flavor in Flavor::ALL {
        progress.start(&format!("timer lateness beside a yielding task, {}", flavor.id()));
        let samples = timer_lateness(flavor, sizes.late_samples)?;
        let (median, largest) =
            (report::median(&samples).unwrap_or_default(), samples.iter().max().copied().unwrap_or_default());
        figures
            .time(&format!("1 ms timer beside a yielding task: lateness, median, {}", flavor.id()), median)
            .time(&format!("1 ms timer beside a yielding task: lateness, largest, {}", flavor.id()), largest);
        late.0.push(d(median));
        late.1.push(d(largest));
        progress.finish_step();
    }
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
    let row = |table: &mut Table, label: String, cells: &[String], earlier: String| {
        table.row(&[label, cells[0].clone(), cells[1].clone(), cells[2].clone(), earlier]);
    };
    let unchecked = "  without the fairness checks".to_string();
    row(
        &mut table,
        format!("spawn + complete, per task ({} tasks)", sizes.tasks),
        &spawn,
        format!("ch02 fiber spawn + join {}; ch01 OS thread {}", d(fiber_spawn), d(thread_spawn)),
    );
    row(&mut table, unchecked.clone(), &spawn_unchecked, "-".to_string());
    row(
        &mut table,
        format!("yield: one wake + poll ({} times)", sizes.yields),
        &yields,
        format!("ch02 fiber yield there and back {}", d(fiber_yield)),
    );
    row(&mut table, unchecked.clone(), &yields_unchecked, "-".to_string());
    row(&mut table, "  with the slow-poll detector".to_string(), &yields_timed, "-".to_string());
    row(
        &mut table,
        format!("ping-pong over a channel, per round trip ({})", sizes.round_trips),
        &ping,
        format!("ch01 two OS threads on one CPU {}", d(thread_hand_over * 2)),
    );
    row(&mut table, unchecked, &ping_unchecked, "-".to_string());
    row(
        &mut table,
        format!("1 ms timer beside a yielding task: lateness, median of {}", sizes.late_samples),
        &late.0,
        "-".to_string(),
    );
    row(&mut table, "  largest".to_string(), &late.1, "-".to_string());

    // Fresh processes: many sleeping tasks at once.
    let (mut walls, mut memory) = (Vec::new(), Vec::new());
    for flavor in Flavor::ALL {
        let args = ["sleeps", flavor.id(), &sizes.sleeps.to_string(), &sizes.delay_ms.to_string()];
        let samples = runs_in_children(&mut progress, &args)?;
        let (wall, per_task) = (median(&samples, |s| s.wall), median(&samples, |s| s.rss_rise) / sizes.sleeps as u64);
        figures
            .time(&format!("{} sleeps, {}: wall", sizes.sleeps, flavor.id()), wall)
            .bytes(&format!("sleeps, {}: memory per task", flavor.id()), per_task);
        walls.push(d(wall));
        memory.push(report::bytes(per_task));
    }
    progress.start("a parked OS thread and a parked fiber");
    let thread_memory = measure::memory_per_parked_thread(1_000, 64 * 1024)?;
    let fibers_parked = sizes.sleeps.min(10_000);
    let args = ["fibers", "-", &fibers_parked.to_string(), "0"].map(String::from);
    let fiber = bench_kit::run_in_child(&args)?;
    progress.finish_step();
    figures
        .bytes("ch02 parked fiber: memory", fiber.rss_rise / fibers_parked as u64)
        .bytes("ch01 parked OS thread: memory", thread_memory.resident_per_thread);
    let sleeping = format!("{} tasks sleeping {} ms at once: wall", sizes.sleeps, sizes.delay_ms);
    row(&mut table, sleeping, &walls, "-".to_string());
    let earlier = format!(
        "ch02 parked fiber {}; ch01 parked OS thread {}",
        report::bytes(fiber.rss_rise / fibers_parked as u64),
        report::bytes(thread_memory.resident_per_thread)
    );
    row(&mut table, "  memory per sleeping task".to_string(), &memory, earlier);

    // Fresh processes against this chapter's async server in another one.
    if gets_fit {
        let server = BenchServer::from_env_or_child().context("starting the async delay server")?;
        let (n, delay, addr) = (sizes.gets.to_string(), sizes.delay_ms.to_string(), server.addr.to_string());
        let mut cells = Vec::new();
        let runs =
            Flavor::ALL.map(|flavor| ["gets", flavor.id()]).into_iter().chain([["gets", "ch04"], ["gets", "ch03"]]);
        for [what, how] in runs {
            let samples = runs_in_children(&mut progress, &[what, how, &n, &delay, &addr])?;
            let failed: usize = samples.iter().map(|s| sizes.gets - s.outcome.answered).sum();
            let cell = format!("{} gets, {how}", sizes.gets);
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
        for (i, what) in ["wall", "CPU time", "listen overflows"].iter().enumerate() {
            let label = match i {
                0 => format!("{} GETs at once, {} ms each: wall", sizes.gets, sizes.delay_ms),
                _ => format!("  {what}"),
            };
            let ours: Vec<String> = cells[..flavors].iter().map(|cell| cell[i].clone()).collect();
            let earlier = format!("ch04 coroutines {}; ch03 epoll loop {}", cells[flavors][i], cells[flavors + 1][i]);
            row(&mut table, label, &ours, earlier);
        }
        progress.clear();
        say_aside(json, "main", &format!("the GETs went to the {}", server.describe()));
    } else {
        progress.clear();
        let skip =
            format!("skipping {} GETs: the open-files limit {limit} is too low (raise `ulimit -Hn`)", sizes.gets);
        say_aside(json, "main", &skip);
    }
    let uring =
        if gets_fit { crate::bench_uring::table(sizes.gets, sizes.delay_ms, &mut figures, json)? } else { None };
    if json {
        print!("{}", figures.to_json_lines());
        return Ok(());
    }
    print!("{table}");
    let legend = format!(
        "Runtimes: single-threaded with the process's reactor thread; single-threaded waiting in its own \
         reactor's epoll_wait (IoDriver::ExecutorThread, tokio's way); two worker threads. Without the \
         fairness checks: no cooperative budget, and the injector and the driver looked at only when no \
         task is ready. The slow-poll detector (on by default in debug builds only) reads the clock around \
         every poll. Medians of {RUNS} runs in this process for spawn, yield and ping-pong; the lateness \
         of {late} sleeps of 1 ms, one after the other in one task, while another task yields in a loop; \
         {SLOW_RUNS} runs, each in a fresh process, for the rest. Memory per task: the rise of the \
         process's resident memory during the run (its peak minus where it started), divided by the \
         tasks. Listen overflows: handshake packets dropped because the server's accept queue was full \
         (TcpExt ListenOverflows, whole machine). The server is this chapter's async one, in a child \
         process of its own.",
        late = sizes.late_samples
    );
    print!("{}", report::wrap(&legend, 100, ""));
    if let Some(uring) = uring {
        print!("\n{uring}{}", crate::bench_uring::legend());
    }
    Ok(())
}

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

// ANCHOR: bench_spawn
/// `n` tasks spawned and run to completion; the last one to finish tells
/// `block_on` (through a channel), so nothing polls in a loop meanwhile.
fn spawn_complete(setup: Setup, n: usize) -> io::Result<Duration> {
    let runtime = setup.runtime()?;
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

/// One task yielding `n` times (`coop::yield_now`: wake itself, `Pending`).
fn yield_loop(setup: Setup, n: usize) -> io::Result<Duration> {
    let runtime = setup.runtime()?;
    let started = Instant::now();
    runtime.block_on(async move {
        spawn(async move {
            for _ in 0..n {
                yield_now().await
            }
        })
        .await
    })?;
    Ok(started.elapsed())
}

/// Two tasks sending a number back and forth `n` times over two channels.
fn ping_pong(setup: Setup, n: usize) -> io::Result<Duration> {
    let runtime = setup.runtime()?;
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

// ANCHOR: lateness
/// How late a 1 ms `sleep` wakes while another task yields in a loop, `n`
/// times in a row: the fairness checks at work (without them, on one
/// thread, the timer's wake would wait until the yielding task stopped).
fn timer_lateness(flavor: Flavor, n: usize) -> io::Result<Vec<Duration>> {
    const NAP: Duration = Duration::from_millis(1);
    let runtime = flavor.runtime()?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::clone(&stop);
        let spinner = spawn(async move {
            while !spinning.load(Ordering::Relaxed) {
                yield_now().await;
            }
        });
        let sleeper = spawn(async move {
            let mut late = Vec::with_capacity(n);
            for _ in 0..n {
                let asked = Instant::now();
                sleep(NAP).await;
                late.push(asked.elapsed().saturating_sub(NAP));
            }
            late
        });
        let late = sleeper.await.map_err(io::Error::from);
        stop.store(true, Ordering::Relaxed);
        spinner.await?;
        late
    })
}
// ANCHOR_END: lateness

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
    let usage = || format!("usage: {} fibers|sleeps|gets <how> <n> <delay ms> [addr]", bench_kit::RUN);
    let (what, how, n, delay, addr) = match args {
        [what, how, n, delay] => (what, how, n, delay, None),
        [what, how, n, delay, addr] => (what, how, n, delay, Some(addr.parse::<SocketAddr>()?)),
        _ => bail!(usage()),
    };
    let (n, delay): (usize, u64) = (n.parse()?, delay.parse()?);
    sys::raise_open_files_limit()?;
    let path = http::path(delay, "x");
    if let Some(uring) = how.strip_prefix("uring-").filter(|_| what == "gets") {
        return crate::bench_uring::run_one(uring, n, &path, addr);
    }
    let flavor = Flavor::from_id(how);
    let sample = bench_kit::measure_run(|| {
        let answered = match (what.as_str(), how.as_str(), flavor, addr) {
            ("fibers", _, _, None) => fibers::parked(n).map(|()| n)?,
            ("sleeps", _, Some(flavor), None) => sleeps(flavor, n, delay)?,
            ("gets", _, Some(flavor), Some(addr)) => gets(flavor, addr, &path, n)?,
            ("gets", "ch04", None, Some(addr)) => gets_ch04(addr, &path, n)?,
            ("gets", "ch03", None, Some(addr)) => {
                let paths = vec![path.clone(); n];
                let results = ch03_epoll::client::get_all(addr, &paths, Duration::from_secs(60), |_| {})?;
                results.iter().filter(|r| r.as_ref().is_ok_and(|response| response.status == 200)).count()
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, usage())),
        };
        Ok(Outcome { answered, ..Outcome::default() })
    })?;
    bench_kit::print_sample(&sample)?;
    Ok(())
}

// ANCHOR: bench_sleeps
/// `n` tasks, each sleeping `delay_ms` at the same time.
fn sleeps(flavor: Flavor, n: usize, delay_ms: u64) -> io::Result<usize> {
    let runtime = flavor.runtime()?;
    Ok(runtime.block_on(async move {
        let handles: Vec<_> = (0..n).map(|_| spawn(sleep(Duration::from_millis(delay_ms)))).collect();
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
