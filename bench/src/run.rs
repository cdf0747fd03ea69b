//! Running the parts: each measurement repeated, the figures gathered (one
//! [`Figure`] per number, with its range), then printed and written.
//!
//! Runs are interleaved ([`interleaved`]): one run of every contender, then
//! the next round, so whatever drifts on a shared machine meanwhile (another
//! build, the CPU's clock, the page cache) hits every contender alike,
//! instead of all the runs of whoever happened to go last.
//!
//! Metric names have three parts, `workload / contender / measure`
//! (`10000 GETs / tokio current_thread / CPU time`), or two
//! (`round trip / corosensei`), which is how [`crate::render`] finds them
//! again in `results.jsonl`; the workloads are named in [`crate::render::name`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::client::Timeouts;
use ch01_os_threads::measure::{self, max_map_count};
use ch01_os_threads::report::{self, Figure, Figures, Spread};
use ch01_os_threads::{http, sys};

use crate::fairness::{self, Flood, LATENESS, Lateness, SERVERS, Timing};
use crate::micro::{self, CH01, CH02, PING_PONG, PING_PONG_FROM_BLOCK_ON, Ping, ROUND_TRIP, SLEEPERS, SPAWNERS};
use crate::render::name;
use crate::requests::{self, APPROACHES, STACK};
use crate::{Options, counting, render, syscalls};

/// Every figure's `chapter`.
pub const CHAPTER: &str = "showdown";

/// Memory mappings a thread needs at most: its stack and guard page, and
/// std's signal stack and its guard page (chapter 1 takes them apart).
const MAPS_PER_THREAD: usize = 4;

/// Sockets and files a client process has open besides its requests.
const SPARE_FDS: u64 = 64;

/// The approaches whose system calls are counted at the largest N: those
/// that wait in `epoll_wait` (threads block in `read`, fibers poll).
const COUNTED_APPROACHES: [&str; 10] =
    ["epoll", "uring", "coroutines", "ch05-1", "ch05-own", "ch05-2", "ch05-uring", "tokio-1", "tokio-2", "smol"];

/// The whole run: the parts asked for, then the output.
pub fn all(options: &Options) -> anyhow::Result<()> {
    let mut figures = Figures::new(CHAPTER);
    let open_files = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    limits(&mut figures, open_files);
    // Counting system calls needs perf; without it, the figures say why.
    let perf = syscalls::available();
    if let Err(why) = &perf {
        figures.push(Figure::new(CHAPTER, name::PERF, f64::NAN, "count").with_note(why.clone()));
    }
    let counting = perf.is_ok();
    let started = std::time::Instant::now();
    let mut progress = Progress::new(steps(options, counting));
    if options.showdown {
        showdown(options, open_files, counting, &mut figures, &mut progress)?;
    }
    if options.micro {
        micro(options, counting, &mut figures, &mut progress)?;
    }
    if options.fairness {
        lateness(options, &mut figures, &mut progress)?;
        flooding(options, &mut figures, &mut progress)?;
    }
    drop(progress);
    figures.number(name::ELAPSED, started.elapsed().as_nanos() as f64, "ns");
    let jsonl = figures.to_json_lines();
    let results = render::Results::parse(&jsonl)?;
    if options.json {
        print!("{jsonl}");
    } else {
        print!("{}", render::text(&results));
    }
    if let Some(dir) = &options.out {
        render::write(&results, dir, Some(&jsonl))?;
        eprintln!("[showdown] wrote results.jsonl, the tables and the chart in {}", dir.display());
    }
    Ok(())
}

/// The limits of this machine the page quotes (they decide which N fit).
fn limits(figures: &mut Figures, open_files: u64) {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse().ok());
    figures
        .number(&format!("{} / open files", name::LIMITS), open_files as f64, "count")
        .number(&format!("{} / max_map_count", name::LIMITS), max_map_count().map_or(f64::NAN, |m| m as f64), "count")
        .number(&format!("{} / somaxconn", name::LIMITS), somaxconn.map_or(f64::NAN, |s: u64| s as f64), "count")
        .number(&format!("{} / server connections", name::LIMITS), bench_kit::SERVER_MAX_CONNECTIONS as f64, "count");
}

/// How many steps the progress line counts.
fn steps(options: &Options, counting: bool) -> usize {
    let mut steps = 0;
    if options.showdown {
        steps += options.sizes.len() * APPROACHES.len() * options.runs;
        steps += if counting { COUNTED_APPROACHES.len() } else { 0 };
    }
    if options.micro {
        let per_run = ROUND_TRIP.len() + PING_PONG.len() + PING_PONG_FROM_BLOCK_ON.len() + 2 + SPAWNERS.len();
        steps += (per_run + SLEEPERS.len()) * options.runs + 1;
        steps += if counting { PING_PONG.len() + PING_PONG_FROM_BLOCK_ON.len() } else { 0 };
    }
    if options.fairness {
        steps += (LATENESS.len() + SERVERS.len()) * options.runs;
    }
    steps
}

/// Measures every contender `runs` times, round-robin: one run of each,
/// then the next round. Returns each contender's results, in the order of
/// `contenders`.
fn interleaved<C: Copy, T>(
    runs: usize,
    contenders: &[C],
    progress: &mut Progress,
    describe: impl Fn(C) -> String,
    mut measure: impl FnMut(C) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Vec<T>>> {
    let mut results: Vec<Vec<T>> = contenders.iter().map(|_| Vec::with_capacity(runs)).collect();
    for run in 1..=runs {
        for (i, &who) in contenders.iter().enumerate() {
            progress.start(&format!("{}, run {run}/{runs}", describe(who)));
            results[i].push(measure(who).with_context(|| describe(who))?);
            progress.finish_step();
        }
    }
    Ok(results)
}

/// The showdown: every approach at every N, each run a fresh process, the
/// approaches interleaved; then one counting run each under `perf stat`.
fn showdown(
    options: &Options,
    open_files: u64,
    counting: bool,
    figures: &mut Figures,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let server = BenchServer::from_env_or_child().context("starting chapter 5's delay server")?;
    let delay_ms = options.delay.as_millis() as u64;
    let limits = Timeouts::default();
    figures
        .number("GETs / all / delay", delay_ms as f64 * 1e6, "ns")
        .number("GETs / all / connect timeout", limits.connect.as_nanos() as f64, "ns")
        .number("GETs / all / read timeout", limits.read.as_nanos() as f64, "ns")
        .push(Figure::new(CHAPTER, "GETs / all / runs", options.runs as f64, "count").with_note(server.describe()));
    let gets_args = |id: &str, n: usize| {
        ["gets", id, &n.to_string(), &delay_ms.to_string(), &server.addr.to_string()].map(String::from)
    };
    for &n in &options.sizes {
        let mut fitting = Vec::new();
        for (id, name) in APPROACHES {
            match does_not_fit(id, n, open_files, server.max_connections) {
                Some(why) => {
                    figures.push(
                        Figure::new(CHAPTER, &format!("{n} GETs / {name} / wall"), f64::NAN, "ns").with_note(why),
                    );
                    (0..options.runs).for_each(|_| progress.finish_step());
                }
                None => fitting.push((id, name)),
            }
        }
        let describe = |(_, name): (&str, &str)| format!("{name}, N = {n}");
        let runs = interleaved(options.runs, &fitting, progress, describe, |(id, _)| {
            let before = bench_kit::listen_overflows().unwrap_or(0);
            let sample = child(&gets_args(id, n))?.sample;
            Ok((sample, bench_kit::listen_overflows().unwrap_or(0).saturating_sub(before)))
        })?;
        for ((_, name), runs) in fitting.iter().zip(runs) {
            let workload = format!("{n} GETs / {name}");
            let (samples, overflows): (Vec<Sample>, Vec<u64>) = runs.into_iter().unzip();
            sample_figures(figures, &workload, n, &samples);
            let note = format!("TcpExt ListenOverflows during each run: {overflows:?}");
            figures.push(
                Figure::new(CHAPTER, &format!("{workload} / listen overflows"), median_u64(&overflows) as f64, "count")
                    .with_note(note),
            );
        }
    }
    let Some(&n) = options.sizes.iter().max() else { return Ok(()) };
    if !counting {
        return Ok(());
    }
    for (id, name) in APPROACHES.into_iter().filter(|(id, _)| COUNTED_APPROACHES.contains(id)) {
        progress.start(&format!("counting the system calls of {name}, N = {n}"));
        let workload = format!("{} {n} GETs / {name}", name::CALLS_AT);
        if does_not_fit(id, n, open_files, server.max_connections).is_none() {
            count_figures(figures, &workload, syscalls::count(&gets_args(id, n)), 1.0, "");
        }
        progress.finish_step();
    }
    Ok(())
}

/// The figures of one counting run: the counts divided by `per` (1, or the
/// round trips), each measure's name followed by `suffix`.
fn count_figures(
    figures: &mut Figures,
    workload: &str,
    counts: Result<syscalls::Counts, String>,
    per: f64,
    suffix: &str,
) {
    match counts {
        Ok(counts) => {
            let measures = [
                ("epoll waits", counts.epoll_waits),
                ("writes", counts.writes),
                ("system calls", counts.syscalls),
                ("context switches", counts.context_switches),
            ];
            for (measure, value) in measures {
                figures.number(&format!("{workload} / {measure}{suffix}"), value as f64 / per, "count");
            }
        }
        Err(why) => {
            figures.push(
                Figure::new(CHAPTER, &format!("{workload} / epoll waits{suffix}"), f64::NAN, "count").with_note(why),
            );
        }
    }
}

/// Why `n` requests cannot be made by `approach` here, if they cannot.
fn does_not_fit(approach: &str, n: usize, open_files: u64, server_cap: Option<usize>) -> Option<String> {
    if n as u64 + SPARE_FDS > open_files {
        return Some(format!(
            "does not fit: {n} sockets need more open files than RLIMIT_NOFILE = {open_files} (raise `ulimit -Hn`)"
        ));
    }
    if let Some(cap) = server_cap.filter(|&cap| n > cap) {
        return Some(format!("does not fit: the server holds {cap} connections at most"));
    }
    if matches!(approach, "uring" | "ch05-uring")
        && let Err(e) = ch03_epoll::uring::Ring::new(2)
    {
        return Some(match ch03_epoll::uring::Unavailable::from_error(&e) {
            Some(why) => format!("io_uring is not available here: {why}"),
            None => format!("io_uring could not be set up: {e}"),
        });
    }
    if approach == "threads" {
        let maps_in_use = measure::map_count().unwrap_or(0);
        let max = max_map_count().unwrap_or(usize::MAX);
        if maps_in_use + n * MAPS_PER_THREAD > max {
            return Some(format!(
                "does not fit: {n} threads need about {} memory mappings, vm.max_map_count is {max}",
                n * MAPS_PER_THREAD
            ));
        }
    }
    None
}

/// The figures of one showdown cell: wall, CPU, peak RSS, memory per
/// request (the rise of RSS divided by N), answers.
fn sample_figures(figures: &mut Figures, workload: &str, n: usize, samples: &[Sample]) {
    let times = |f: fn(&Sample) -> Duration| spread(samples.iter().map(f).collect());
    let wall = times(|s| s.wall);
    let cpu = times(|s| s.cpu);
    figures.times(&format!("{workload} / wall"), wall).times(&format!("{workload} / CPU time"), cpu);
    let peak = spread(samples.iter().map(|s| s.peak_rss).collect());
    let per_request = spread(samples.iter().map(|s| s.rss_rise / n.max(1) as u64).collect());
    for (measure, spread) in [("peak RSS", peak), ("memory per request", per_request)] {
        figures.push(bytes_figure(&format!("{workload} / {measure}"), spread));
    }
    let fewest = samples.iter().map(|s| s.outcome.answered).min().unwrap_or(0);
    let mut answered = Figure::new(CHAPTER, &format!("{workload} / answered"), fewest as f64, "count");
    if let Some(error) = samples.iter().find_map(|s| s.outcome.first_error.clone()) {
        answered = answered.with_note(format!("first failure: {error}"));
    }
    figures.push(answered);
}

/// A figure in bytes with its range.
fn bytes_figure(metric: &str, spread: Spread<u64>) -> Figure {
    Figure { range: Some((spread.min as f64, spread.max as f64)), ..Figure::bytes(CHAPTER, metric, spread.median) }
}

/// A time per operation: `totals` (one per run) divided by `n`.
fn per_op_figure(metric: &str, totals: Vec<Duration>, n: usize) -> Figure {
    let spread = spread(totals);
    let ns = |total: Duration| total.as_secs_f64() * 1e9 / n.max(1) as f64;
    Figure { range: Some((ns(spread.min), ns(spread.max))), ..Figure::new(CHAPTER, metric, ns(spread.median), "ns") }
}

/// The median, smallest and largest of some values.
fn spread<T: Copy + Ord>(mut values: Vec<T>) -> Spread<T> {
    values.sort_unstable();
    Spread { median: values[values.len() / 2], min: values[0], max: values[values.len() - 1] }
}

fn median_u64(values: &[u64]) -> u64 {
    report::median(values).unwrap_or(0)
}

/// The sizes of the microbenchmarks.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Round trips (switch or yield).
    trips: usize,
    /// Ping-pong round trips.
    pings: usize,
    /// Tasks spawned and completed.
    tasks: usize,
}

fn micro_sizes(options: &Options) -> Sizes {
    if options.quick {
        Sizes { trips: 10_000, pings: 2_000, tasks: 10_000 }
    } else {
        Sizes { trips: 1_000_000, pings: 200_000, tasks: 1_000_000 }
    }
}

/// Round trips for `who`: a thread hand-over costs microseconds, fewer of them.
fn trips_for(who: &str, sizes: Sizes) -> usize {
    if who == CH01 { sizes.trips / 50 } else { sizes.trips }
}

/// The microbenchmarks, each row's contenders interleaved.
fn micro(options: &Options, counting: bool, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let sizes = micro_sizes(options);
    let runs = options.runs;
    let results = interleaved(
        runs,
        &ROUND_TRIP,
        progress,
        |who| format!("round trip, {who}"),
        |who| Ok(micro::round_trip(who, trips_for(who, sizes))?),
    )?;
    for (who, totals) in ROUND_TRIP.iter().zip(results) {
        figures.push(per_op_figure(&format!("{} / {who}", name::ROUND_TRIP), totals, trips_for(who, sizes)));
    }
    for (ping, contenders, workload) in [
        (Ping::InTask, &PING_PONG[..], name::PING_PONG),
        (Ping::FromBlockOn, &PING_PONG_FROM_BLOCK_ON[..], name::PING_PONG_FROM_BLOCK_ON),
    ] {
        let results = interleaved(
            runs,
            contenders,
            progress,
            |who| format!("{workload}, {who}"),
            |who| Ok(micro::ping_pong(who, ping, sizes.pings)?),
        )?;
        for (who, totals) in contenders.iter().zip(results) {
            figures.push(per_op_figure(&format!("{workload} / {who}"), totals, sizes.pings));
        }
    }
    spawns(options, sizes, figures, progress)?;
    idle_memory(options, figures, progress)?;
    if counting {
        ping_pong_calls(sizes, figures, progress);
    }
    Ok(())
}

/// Spawn + complete: threads and fibers in this process, the executors each
/// in a fresh process (a million tasks at once fill the heap, and a
/// contender that ran after another would find it grown and warm, or
/// fragmented). The executors' processes also count allocations per task.
fn spawns(options: &Options, sizes: Sizes, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let (threads, fibers) = (sizes.tasks / 1_000, sizes.tasks / 10);
    let kinds = [(CH01, threads), (CH02, fibers)];
    let results = interleaved(
        options.runs,
        &kinds,
        progress,
        |(who, _)| format!("spawn + complete, {who}"),
        |(who, n)| {
            Ok(if who == CH01 {
                measure::on_one_cpu(|| measure::spawn_join(n, STACK))? * n as u32
            } else {
                ch02_green_threads::measure::spawn_join(n as u32, Default::default())? * n as u32
            })
        },
    )?;
    for ((who, n), totals) in kinds.iter().zip(results) {
        figures.push(per_op_figure(&format!("{} / {who}", name::SPAWN), totals, *n));
    }
    let tasks = sizes.tasks.to_string();
    let results = interleaved(
        options.runs,
        &SPAWNERS,
        progress,
        |who| format!("spawn + complete, {who}"),
        |who| child(&["spawns", who, &tasks].map(String::from)),
    )?;
    for (who, runs) in SPAWNERS.iter().zip(results) {
        let totals = runs.iter().map(|run| run.sample.wall).collect();
        figures.push(per_op_figure(&format!("{} / {who}", name::SPAWN), totals, sizes.tasks));
        // The same in every run (the work is deterministic): the median.
        let mut allocations: Vec<f64> = runs.iter().filter_map(|run| run.extra(ALLOCATIONS)).collect();
        allocations.sort_by(f64::total_cmp);
        if let Some(&median) = allocations.get(allocations.len() / 2) {
            figures.number(&format!("{} / {who}", name::ALLOCATIONS), median, "count");
        }
    }
    Ok(())
}

/// Memory per idle task: OS threads and fibers parked, tasks sleeping (in
/// fresh processes, which also time the sleeps).
fn idle_memory(options: &Options, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let (delay, n) = options.sleep;
    progress.start("memory of parked OS threads and fibers");
    let threads = measure::memory_per_parked_thread(1_000, STACK)?;
    let fibers_parked = n.min(10_000);
    let (_, fiber) = ch02_green_threads::measure::parked_memory(fibers_parked, Default::default())?;
    progress.finish_step();
    figures
        .push(
            Figure::bytes(CHAPTER, &format!("{} / {CH01}", name::IDLE_MEMORY), threads.resident_per_thread)
                .with_note("1000 threads parked, resident memory each (plus a 16 KiB kernel stack not counted)"),
        )
        .push(
            Figure::bytes(CHAPTER, &format!("{} / {CH02}", name::IDLE_MEMORY), fiber)
                .with_note(format!("{fibers_parked} fibers parked, resident memory each")),
        );
    let describe = |(_, name): (&str, &str)| format!("{n} sleeps, {name}");
    let results = interleaved(options.runs, &SLEEPERS, progress, describe, |(id, _)| {
        let args = ["sleeps", id, &n.to_string(), &delay.as_millis().to_string()];
        Ok(child(&args.map(String::from))?.sample)
    })?;
    for ((_, name), samples) in SLEEPERS.iter().zip(results) {
        let wall = spread(samples.iter().map(|s| s.wall).collect());
        let memory = spread(samples.iter().map(|s| s.rss_rise / n as u64).collect());
        figures
            .times(&format!("{n} sleeps wall / {name}"), wall)
            .push(bytes_figure(&format!("{} / {name}", name::IDLE_MEMORY), memory));
        if let Some(short) = samples.iter().find(|s| s.outcome.answered < n) {
            let note = format!("only {} of {n} sleeps finished", short.outcome.answered);
            figures.push(
                Figure::new(CHAPTER, &format!("{n} sleeps finished / {name}"), f64::NAN, "count").with_note(note),
            );
        }
    }
    figures.number("sleeps / all / delay", delay.as_nanos() as f64, "ns");
    Ok(())
}

/// One counting run per ping-pong contender and variant, per round trip.
fn ping_pong_calls(sizes: Sizes, figures: &mut Figures, progress: &mut Progress) {
    for (ping, contenders) in [(Ping::InTask, &PING_PONG[..]), (Ping::FromBlockOn, &PING_PONG_FROM_BLOCK_ON[..])] {
        for who in contenders {
            progress.start(&format!("counting the system calls of ping-pong ({}), {who}", ping.id()));
            let args = ["pingpong", who, ping.id(), &sizes.pings.to_string()].map(String::from);
            let workload = format!("{} / {who}", name::CALLS_PER_PING_PONG);
            count_figures(figures, &workload, syscalls::count(&args), sizes.pings as f64, &format!(", {}", ping.id()));
            progress.finish_step();
        }
    }
}

/// The settings of the fairness rows.
fn timing(options: &Options) -> Timing {
    let timer = Duration::from_millis(1);
    if options.quick {
        Timing { timer, samples: 10, spin_limit: Duration::from_millis(100) }
    } else {
        Timing { timer, samples: 100, spin_limit: Duration::from_secs(1) }
    }
}

fn flood_settings(options: &Options) -> Flood {
    let head_start = Duration::from_millis(100);
    let limit = if options.quick { Duration::from_millis(500) } else { Duration::from_secs(3) };
    Flood { flooders: 2, head_start, limit }
}

/// Timer lateness, alone and beside a task that yields in a loop.
fn lateness(options: &Options, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let timing = timing(options);
    let results = interleaved(
        options.runs,
        &LATENESS,
        progress,
        |who| format!("timer lateness, {who}"),
        |who| Ok(fairness::lateness(who, timing)?),
    )?;
    let workload = name::LATENESS;
    figures
        .number(&format!("{workload} / all / timer"), timing.timer.as_nanos() as f64, "ns")
        .number(&format!("{workload} / all / sleeps"), timing.samples as f64, "count")
        .number(&format!("{workload} / all / spin limit"), timing.spin_limit.as_nanos() as f64, "ns");
    for (who, runs) in LATENESS.iter().zip(results) {
        let summary = |pick: fn(&Lateness) -> &Vec<Duration>, max: bool| {
            spread(runs.iter().map(|run| if max { maximum(pick(run)) } else { median_duration(pick(run)) }).collect())
        };
        figures
            .times(&format!("{workload} / {who} / {}", name::ALONE_MEDIAN), summary(|r| &r.alone, false))
            .times(&format!("{workload} / {who} / {}", name::ALONE_MAX), summary(|r| &r.alone, true))
            .times(&format!("{workload} / {who} / {}", name::BESIDE_MEDIAN), summary(|r| &r.beside, false))
            .times(&format!("{workload} / {who} / {}", name::BESIDE_MAX), summary(|r| &r.beside, true));
        let starved = runs.iter().filter(|run| run.starved).count();
        let mut figure =
            Figure::new(CHAPTER, &format!("{workload} / {who} / {}", name::STARVED), starved as f64, "count");
        if starved > 0 {
            figure = figure.with_note(format!(
                "in {starved} of {} runs the yielding task reached its {} limit before the sleeps were done",
                runs.len(),
                report::duration(timing.spin_limit)
            ));
        }
        figures.push(figure);
    }
    Ok(())
}

fn median_duration(values: &[Duration]) -> Duration {
    report::median(values).unwrap_or_default()
}

fn maximum(values: &[Duration]) -> Duration {
    values.iter().copied().max().unwrap_or_default()
}

/// Flooding clients against each server, each run a fresh process.
fn flooding(options: &Options, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let flood = flood_settings(options);
    let describe = |(_, name): (&str, &str)| format!("flooding clients, {name}");
    let results = interleaved(options.runs, &SERVERS, progress, describe, |(id, _)| {
        let millis = |d: Duration| d.as_millis().to_string();
        let args = ["flood", id, &flood.flooders.to_string(), &millis(flood.head_start), &millis(flood.limit)];
        let run = child(&args.map(String::from))?;
        Ok(run.extra(ANSWER_NS).map(|ns| Duration::from_nanos(ns as u64)))
    })?;
    let workload = name::FLOODING;
    figures.number(&format!("{workload} / all / flooders"), flood.flooders as f64, "count").number(
        &format!("{workload} / all / limit"),
        flood.limit.as_nanos() as f64,
        "ns",
    );
    for ((_, name), runs) in SERVERS.iter().zip(results) {
        figures.push(flood_figure(&format!("{workload} / {name} / {}", name::ANSWER_TIME), &runs, flood.limit));
        let unanswered = runs.iter().filter(|run| run.is_none()).count();
        figures.number(&format!("{workload} / {name} / {}", name::UNANSWERED), unanswered as f64, "count");
    }
    Ok(())
}

/// The figure of the flooding row: the median wait, where a run with no
/// answer counts as later than any answer (so the median is "no answer"
/// when most runs got none); the range spans the runs that got one.
fn flood_figure(metric: &str, runs: &[Option<Duration>], limit: Duration) -> Figure {
    let mut sorted: Vec<Option<Duration>> = runs.to_vec();
    // `None` last: no answer is later than every answer.
    sorted.sort_by_key(|run| run.map_or((1, Duration::ZERO), |took| (0, took)));
    let answered: Vec<Duration> = runs.iter().flatten().copied().collect();
    let range = answered.iter().min().zip(answered.iter().max());
    let ns = |d: &Duration| d.as_nanos() as f64;
    let median = sorted.get(sorted.len() / 2).copied().flatten();
    let mut figure = Figure::new(CHAPTER, metric, median.as_ref().map_or(f64::NAN, ns), "ns");
    figure.range = range.map(|(min, max)| (ns(min), ns(max)));
    let unanswered = runs.len() - answered.len();
    if unanswered > 0 {
        figure = figure.with_note(format!(
            "no answer within {} in {unanswered} of {} runs",
            report::duration(limit),
            runs.len()
        ));
    }
    figure
}

/// The extra line a `spawns` run prints: allocations per task.
const ALLOCATIONS: &str = "allocations-per-task";
/// The extra line a `flood` run prints: the victim's wait in nanoseconds,
/// or `none`.
const ANSWER_NS: &str = "answer-ns";

/// What a `bench-run` child printed: `name value` lines, then its sample.
#[derive(Debug)]
struct ChildRun {
    /// The last line.
    sample: Sample,
    /// The lines before it.
    extras: Vec<(String, String)>,
}

impl ChildRun {
    /// The extra value called `name`, if it is a number.
    fn extra(&self, name: &str) -> Option<f64> {
        self.extras.iter().find(|(key, _)| key == name).and_then(|(_, value)| value.parse().ok())
    }
}

/// Runs this binary again as `bench-run ARGS` and reads what it printed
/// (as [`bench_kit::run_in_child`] does, keeping the lines before the sample).
fn child(args: &[String]) -> anyhow::Result<ChildRun> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg(bench_kit::RUN)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!("the run `{} {}` failed ({}): {stdout}", bench_kit::RUN, args.join(" "), output.status);
    }
    let mut lines: Vec<&str> = stdout.lines().collect();
    let sample = Sample::from_line(lines.pop().unwrap_or_default())?;
    let extras = lines
        .into_iter()
        .filter_map(|line| line.split_once(' '))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    Ok(ChildRun { sample, extras })
}

/// The longest one measured run may take: every approach bounds its own
/// requests ([`requests::RUN_TIMEOUT`]), and this bounds the process, so a
/// stuck run ends the showdown with an error instead of hanging it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The hidden `bench-run`: one measured run in this fresh process.
pub fn one(args: &[String]) -> anyhow::Result<()> {
    std::thread::spawn(|| {
        std::thread::sleep(RUN_LIMIT);
        eprintln!("error: bench-run gave up after {} s", RUN_LIMIT.as_secs());
        std::process::exit(2);
    });
    sys::raise_open_files_limit()?;
    let number = |text: &String| text.parse::<u64>().with_context(|| format!("{text:?} is not a number"));
    // Only the operation itself is timed in these: `wall` carries that
    // time, nothing else is measured.
    let timed = |wall| Sample { wall, cpu: Duration::ZERO, peak_rss: 0, rss_rise: 0, outcome: Outcome::default() };
    let sample = match args {
        [kind, approach, n, delay_ms, addr] if kind == "gets" => {
            let (n, delay_ms) = (number(n)? as usize, number(delay_ms)?);
            let addr: SocketAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
            let path = http::path(delay_ms, "x");
            bench_kit::measure_run(|| requests::run(approach, addr, &path, n))?
        }
        [kind, who, n] if kind == "spawns" => {
            let n = number(n)? as usize;
            let wall = micro::spawn_complete(who, n)?;
            // Then count, in a smaller run that is not timed (counting costs
            // an atomic add per allocation): allocations per task.
            let counted = (n / 10).max(1);
            let (result, allocations) = counting::count_allocations(|| micro::spawn_complete(who, counted));
            result?;
            println!("{ALLOCATIONS} {}", allocations as f64 / counted as f64);
            timed(wall)
        }
        [kind, who, ping, n] if kind == "pingpong" => {
            timed(micro::ping_pong(who, Ping::from_id(ping)?, number(n)? as usize)?)
        }
        [kind, who, n, delay_ms] if kind == "sleeps" => {
            let (n, delay) = (number(n)? as usize, Duration::from_millis(number(delay_ms)?));
            bench_kit::measure_run(|| Ok(Outcome { answered: micro::sleeps(who, n, delay)?, ..Outcome::default() }))?
        }
        [kind, server, flooders, head_start_ms, limit_ms] if kind == "flood" => {
            let (head_start, limit) =
                (Duration::from_millis(number(head_start_ms)?), Duration::from_millis(number(limit_ms)?));
            let answer = fairness::flood(server, Flood { flooders: number(flooders)? as usize, head_start, limit })?;
            println!("{ANSWER_NS} {}", answer.map_or("none".to_string(), |took| took.as_nanos().to_string()));
            timed(answer.unwrap_or(limit))
        }
        _ => anyhow::bail!(
            "usage: {} gets APPROACH N DELAY_MS ADDR | spawns WHO N | pingpong WHO tasks|block_on N \
             | sleeps WHO N DELAY_MS | flood SERVER FLOODERS HEAD_START_MS LIMIT_MS",
            bench_kit::RUN
        ),
    };
    bench_kit::print_sample(&sample)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_n_that_does_not_fit_says_why() {
        let why = |approach, n, files, cap| does_not_fit(approach, n, files, cap).unwrap_or_default();
        assert!(why("epoll", 20_000, 20_000, None).contains("RLIMIT_NOFILE = 20000"));
        assert!(why("epoll", 13_000, 20_000, Some(12_000)).contains("holds 12000 connections"));
        assert_eq!(does_not_fit("epoll", 10_000, 20_000, Some(12_000)), None);
        // Threads: four mappings each, against vm.max_map_count.
        let max = max_map_count().unwrap_or(65_530);
        let too_many = max / MAPS_PER_THREAD + 1;
        assert!(why("threads", too_many, u64::MAX, None).contains("vm.max_map_count"));
        assert_eq!(does_not_fit("coroutines", too_many, u64::MAX, None), None);
    }

    #[test]
    fn a_flood_run_without_an_answer_counts_as_later_than_any_answer() {
        let ms = Duration::from_millis;
        let limit = Duration::from_secs(3);
        let mostly_none = flood_figure("x", &[None, Some(ms(870)), None, None, None], limit);
        assert!(mostly_none.value.is_nan(), "{mostly_none:?}");
        assert_eq!(mostly_none.range, Some((870e6, 870e6)));
        assert_eq!(mostly_none.note.as_deref(), Some("no answer within 3.00 s in 4 of 5 runs"));
        let mostly_some = flood_figure("x", &[Some(ms(2)), None, Some(ms(1)), Some(ms(5)), None], limit);
        assert_eq!(mostly_some.value, 5e6, "the middle of 1, 2, 5, none, none");
        assert_eq!(mostly_some.range, Some((1e6, 5e6)));
        let all = flood_figure("x", &[Some(ms(1)), Some(ms(2)), Some(ms(3))], limit);
        assert_eq!((all.value, all.note), (2e6, None));
    }

    #[test]
    fn interleaved_runs_go_round_robin() -> anyhow::Result<()> {
        let mut order = Vec::new();
        let mut progress = Progress::new(6);
        let results = interleaved(3, &["a", "b"], &mut progress, str::to_string, |who| {
            order.push(who);
            Ok(order.len())
        })?;
        assert_eq!(order, ["a", "b", "a", "b", "a", "b"]);
        assert_eq!(results, [vec![1, 3, 5], vec![2, 4, 6]]);
        Ok(())
    }
}
