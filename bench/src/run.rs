//! Running the parts: each measurement repeated, the figures gathered (one
//! [`Figure`] per number, with its range), then printed and written.
//!
//! Metric names have three parts, `workload / contender / measure`
//! (`10000 GETs / tokio current_thread / CPU time`), which is how
//! [`crate::render`] finds them again in `results.jsonl`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::measure::{self, max_map_count};
use ch01_os_threads::report::{self, Figure, Figures, Spread};
use ch01_os_threads::{http, sys};

use crate::micro::{self, EXECUTORS, ROUND_TRIP, SLEEPERS};
use crate::requests::{self, APPROACHES, STACK};
use crate::{Options, render};

/// Every figure's `chapter`.
pub const CHAPTER: &str = "showdown";

/// Memory mappings a thread needs at most: its stack and guard page, and
/// std's signal stack and its guard page (chapter 1 takes them apart).
const MAPS_PER_THREAD: usize = 4;

/// Sockets and files a client process has open besides its requests.
const SPARE_FDS: u64 = 64;

/// The whole run: the parts asked for, then the output.
pub fn all(options: &Options) -> anyhow::Result<()> {
    let mut figures = Figures::new(CHAPTER);
    let limit = sys::raise_open_files_limit().context("raising RLIMIT_NOFILE")?;
    let showdown_steps = if options.showdown { options.sizes.len() * APPROACHES.len() * options.runs } else { 0 };
    let micro_steps = if options.micro { micro_steps(options) } else { 0 };
    let mut progress = Progress::new(showdown_steps + micro_steps);
    if options.showdown {
        showdown(options, limit, &mut figures, &mut progress)?;
    }
    if options.micro {
        micro(options, &mut figures, &mut progress)?;
    }
    drop(progress);
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

/// The showdown: every approach at every N, each run a fresh process.
fn showdown(options: &Options, limit: u64, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let server = BenchServer::from_env_or_child().context("starting chapter 5's delay server")?;
    let delay_ms = options.delay.as_millis() as u64;
    figures
        .number("GETs / all / delay", delay_ms as f64 * 1e6, "ns")
        .push(Figure::new(CHAPTER, "GETs / all / runs", options.runs as f64, "count").with_note(server.describe()));
    for &n in &options.sizes {
        for (id, name) in APPROACHES {
            let workload = format!("{n} GETs / {name}");
            if let Some(why) = does_not_fit(id, n, limit, server.max_connections) {
                figures.push(Figure::new(CHAPTER, &format!("{workload} / wall"), f64::NAN, "ns").with_note(why));
                (0..options.runs).for_each(|_| progress.finish_step());
                continue;
            }
            let mut samples = Vec::with_capacity(options.runs);
            let mut overflows = Vec::with_capacity(options.runs);
            for run in 1..=options.runs {
                progress.start(&format!("{name}, N = {n}, run {run}/{}", options.runs));
                let before = bench_kit::listen_overflows().unwrap_or(0);
                let args = ["gets", id, &n.to_string(), &delay_ms.to_string(), &server.addr.to_string()];
                samples.push(bench_kit::run_in_child(&args.map(String::from))?);
                overflows.push(bench_kit::listen_overflows().unwrap_or(0).saturating_sub(before));
                progress.finish_step();
            }
            sample_figures(figures, &workload, n, &samples);
            let overflow_note = format!("TcpExt ListenOverflows during each run: {overflows:?}");
            figures.push(
                Figure::new(CHAPTER, &format!("{workload} / listen overflows"), median_u64(&overflows) as f64, "count")
                    .with_note(overflow_note),
            );
        }
    }
    Ok(())
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
    let bytes = |values: Vec<u64>| spread(values);
    let peak = bytes(samples.iter().map(|s| s.peak_rss).collect());
    let per_request = bytes(samples.iter().map(|s| s.rss_rise / n.max(1) as u64).collect());
    for (measure, spread) in [("peak RSS", peak), ("memory per request", per_request)] {
        figures.push(Figure {
            range: Some((spread.min as f64, spread.max as f64)),
            ..Figure::bytes(CHAPTER, &format!("{workload} / {measure}"), spread.median)
        });
    }
    let fewest = samples.iter().map(|s| s.outcome.answered).min().unwrap_or(0);
    let mut answered = Figure::new(CHAPTER, &format!("{workload} / answered"), fewest as f64, "count");
    if let Some(error) = samples.iter().find_map(|s| s.outcome.first_error.clone()) {
        answered = answered.with_note(format!("first failure: {error}"));
    }
    figures.push(answered);
}

/// The median, smallest and largest of some values.
fn spread<T: Copy + Ord>(mut values: Vec<T>) -> Spread<T> {
    values.sort_unstable();
    Spread { median: values[values.len() / 2], min: values[0], max: values[values.len() - 1] }
}

fn median_u64(values: &[u64]) -> u64 {
    report::median(values).unwrap_or(0)
}

/// The sizes of the microbenchmarks: (round trips, ping-pongs, tasks).
fn micro_sizes(options: &Options) -> (usize, usize, usize) {
    if options.quick { (10_000, 2_000, 10_000) } else { (1_000_000, 200_000, 1_000_000) }
}

fn micro_steps(options: &Options) -> usize {
    // Round trips, ping-pongs, spawns (the executors, threads and fibers),
    // sleeps; and one step for the parked threads and fibers.
    (ROUND_TRIP.len() + 2 * EXECUTORS.len() + 2 + SLEEPERS.len()) * options.runs + 1
}

/// The microbenchmarks.
fn micro(options: &Options, figures: &mut Figures, progress: &mut Progress) -> anyhow::Result<()> {
    let (trips, pings, tasks) = micro_sizes(options);
    let runs = options.runs;
    // Times a total over `runs` runs; the figure is per operation.
    let mut per_op = |metric: &str, n: usize, f: &mut dyn FnMut() -> io::Result<Duration>| -> anyhow::Result<()> {
        let mut totals = Vec::with_capacity(runs);
        for run in 1..=runs {
            progress.start(&format!("{metric}, run {run}/{runs}"));
            totals.push(f().with_context(|| metric.to_string())?);
            progress.finish_step();
        }
        let spread = spread(totals);
        let ns = |total: Duration| total.as_secs_f64() * 1e9 / n.max(1) as f64;
        figures.push(Figure {
            range: Some((ns(spread.min), ns(spread.max))),
            ..Figure::new(CHAPTER, metric, ns(spread.median), "ns")
        });
        Ok(())
    };
    for who in ROUND_TRIP {
        // A thread hand-over costs microseconds: fewer of them.
        let n = if who.starts_with("ch01") { trips / 50 } else { trips };
        per_op(&format!("round trip / {who}"), n, &mut || micro::round_trip(who, n))?;
    }
    for who in EXECUTORS {
        per_op(&format!("ping-pong / {who}"), pings, &mut || micro::ping_pong(who, pings))?;
    }
    let (threads, fibers) = (tasks / 1_000, tasks / 10);
    per_op("spawn + complete / ch01 OS threads (1 CPU)", threads, &mut || {
        Ok(measure::on_one_cpu(|| measure::spawn_join(threads, STACK))? * threads as u32)
    })?;
    per_op("spawn + complete / ch02 fibers, teaching switch", fibers, &mut || {
        Ok(ch02_green_threads::measure::spawn_join(fibers as u32, Default::default())? * fibers as u32)
    })?;
    // Each run in a fresh process: a million tasks at once fill the heap, and
    // a contender that ran after another would find it grown and warm (no
    // page faults) or fragmented, depending on who went before.
    for who in EXECUTORS {
        per_op(&format!("spawn + complete / {who}"), tasks, &mut || {
            let args = ["spawns", who, &tasks.to_string()];
            Ok(bench_kit::run_in_child(&args.map(String::from))?.wall)
        })?;
    }
    idle_memory(options, figures, progress)
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
            Figure::bytes(CHAPTER, "idle task memory / ch01 OS threads (1 CPU)", threads.resident_per_thread)
                .with_note("1000 threads parked, resident memory each (plus a 16 KiB kernel stack not counted)"),
        )
        .push(
            Figure::bytes(CHAPTER, "idle task memory / ch02 fibers, teaching switch", fiber)
                .with_note(format!("{fibers_parked} fibers parked, resident memory each")),
        );
    for (id, name) in SLEEPERS {
        let mut samples = Vec::with_capacity(options.runs);
        for run in 1..=options.runs {
            progress.start(&format!("{n} sleeps on {name}, run {run}/{}", options.runs));
            let args = ["sleeps", id, &n.to_string(), &delay.as_millis().to_string()];
            samples.push(bench_kit::run_in_child(&args.map(String::from))?);
            progress.finish_step();
        }
        let wall = spread(samples.iter().map(|s| s.wall).collect());
        let memory = spread(samples.iter().map(|s| s.rss_rise / n as u64).collect());
        figures.times(&format!("{n} sleeps wall / {name}"), wall).push(Figure {
            range: Some((memory.min as f64, memory.max as f64)),
            ..Figure::bytes(CHAPTER, &format!("idle task memory / {name}"), memory.median)
        });
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

/// The longest one measured run may take: every approach bounds its own
/// requests ([`requests::RUN_TIMEOUT`]), and this bounds the process, so a
/// stuck run ends the showdown with an error instead of hanging it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The hidden `bench-run`: one measured run in this fresh process.
/// `gets APPROACH N DELAY_MS ADDR`, `sleeps WHO N DELAY_MS` or `spawns WHO N`.
pub fn one(args: &[String]) -> anyhow::Result<()> {
    std::thread::spawn(|| {
        std::thread::sleep(RUN_LIMIT);
        eprintln!("error: bench-run gave up after {} s", RUN_LIMIT.as_secs());
        std::process::exit(2);
    });
    sys::raise_open_files_limit()?;
    let number = |text: &String| text.parse::<u64>().with_context(|| format!("{text:?} is not a number"));
    let sample = match args {
        [kind, approach, n, delay_ms, addr] if kind == "gets" => {
            let (n, delay_ms) = (number(n)? as usize, number(delay_ms)?);
            let addr: SocketAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
            let path = http::path(delay_ms, "x");
            bench_kit::measure_run(|| requests::run(approach, addr, &path, n))?
        }
        [kind, who, n] if kind == "spawns" => {
            // Only the spawning and completing is timed, as in `micro`'s
            // other rows: `wall` carries that time, nothing else is measured.
            let wall = micro::spawn_complete(who, number(n)? as usize)?;
            Sample { wall, cpu: Duration::ZERO, peak_rss: 0, rss_rise: 0, outcome: Outcome::default() }
        }
        [kind, who, n, delay_ms] if kind == "sleeps" => {
            let (n, delay) = (number(n)? as usize, Duration::from_millis(number(delay_ms)?));
            bench_kit::measure_run(|| Ok(Outcome { answered: micro::sleeps(who, n, delay)?, ..Outcome::default() }))?
        }
        _ => anyhow::bail!(
            "usage: {} gets APPROACH N DELAY_MS ADDR | sleeps WHO N DELAY_MS | spawns WHO N",
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
}
