//! # The showdown: one workload through every chapter, and against the peers
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml              # everything, about 7 minutes
//! cargo run --release --manifest-path bench/Cargo.toml -- --help
//! ```
//!
//! Three parts, one run:
//!
//! - **the showdown** ([`requests`]): N concurrent GETs (100, 1 000, 10 000)
//!   to the delay server, each answered after the same delay, done by a
//!   thread per request (ch01), green threads (ch02), one epoll loop (ch03),
//!   hand-written coroutines (ch04), our runtime on one thread (with the
//!   reactor thread, and with its own reactor) and on two workers (ch05),
//!   tokio (current_thread, multi_thread) and smol's `LocalExecutor`. Wall
//!   time, CPU time, peak RSS and memory per request; every run a fresh
//!   process; the server is chapter 5's async one, started once, in a
//!   process of its own, the same for everyone. Then one run each under
//!   `perf stat`, not timed, to count system calls ([`syscalls`]).
//! - **microbenchmarks** ([`micro`]): switch or yield round trip, ping-pong
//!   (between two tasks, and from `block_on`), spawn + complete (and
//!   allocations per task, [`counting`]), memory per idle task and 100 000
//!   concurrent sleeps, next to corosensei, tokio, async-executor and
//!   futures' LocalPool.
//! - **fairness** ([`fairness`]): how late a 1 ms timer fires beside a task
//!   that yields in a loop, and how long a client waits while two others
//!   flood the delay server.
//!
//! Every row's contenders run interleaved (one run of each in turn, see
//! `run.rs`). The figures go out as one JSON object per line (`--json`
//! prints them; `results.jsonl` keeps them), and the tables, the chart and
//! the page's sentences that quote figures, in `docs/src/showdown/`, are
//! generated from that file ([`render`], [`chart`], [`prose`]), never typed
//! by hand: `showdown render FILE` regenerates them.

mod chart;
mod counting;
mod fairness;
mod micro;
mod prose;
mod render;
mod requests;
mod run;
mod syscalls;

/// Every allocation of this program goes through std's allocator, counted
/// on demand (allocations per spawned task, see [`counting`]).
#[global_allocator]
static ALLOCATOR: counting::CountingAllocator = counting::CountingAllocator;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ch01_os_threads::{bench_kit, cli, sys};

const HELP: &str = "\
showdown: one workload through every chapter, and against tokio, smol, futures and corosensei

USAGE:
    cargo run --release --manifest-path bench/Cargo.toml -- [PART] [OPTIONS]

PARTS:
    (none)         all three parts (about 7 minutes on 2 CPUs)
    showdown       only N concurrent GETs through every approach (and their system calls)
    micro          only the microbenchmarks
    fairness       only the fairness rows: timer lateness beside a yielding task, flooding clients
    render FILE    write the tables, the chart and the page's sentences again from a results.jsonl
    --help         this text

OPTIONS:
    --json         print the figures as one JSON object per line, not as tables
    --sizes LIST   the N of the showdown (default 100,1000,10000)
    --runs N       runs per cell, interleaved across the contenders; median and
                   min-max reported (default 5, at least 5 unless --quick)
    --quick        small sizes and few runs, to check that everything works;
                   writes nothing
    --out DIR      where the tables, chart and results.jsonl go (default
                   docs/src/showdown/ of this repository)
    --no-write     print only, write no files

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of chapter 5's in a child process
";

/// What one invocation is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run the showdown part.
    pub showdown: bool,
    /// Run the microbenchmarks.
    pub micro: bool,
    /// Run the fairness rows.
    pub fairness: bool,
    /// Print JSON lines instead of tables.
    pub json: bool,
    /// The N of the showdown.
    pub sizes: Vec<usize>,
    /// Runs per cell.
    pub runs: usize,
    /// Small everything, write nothing.
    pub quick: bool,
    /// Where to write, if anywhere.
    pub out: Option<PathBuf>,
    /// How long the server holds each GET.
    pub delay: Duration,
    /// How long each idle task sleeps, and how many sleep at once.
    pub sleep: (Duration, usize),
}

fn main() -> ExitCode {
    ch01_os_threads::trace::start();
    cli::exit_code(main_with(std::env::args().skip(1).collect()))
}

fn main_with(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        // Hidden: the server and every measured run are this binary again.
        Some(bench_kit::SERVE) => serve(),
        Some(bench_kit::RUN) => run::one(&args[1..]),
        Some("render") => match &args[1..] {
            [file] => render_file(file),
            _ => bail!("render takes one file, e.g. render docs/src/showdown/results.jsonl"),
        },
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        _ => run::all(&parse(&args)?),
    }
}

/// Parses the parts and options.
fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        showdown: true,
        micro: true,
        fairness: true,
        json: false,
        sizes: vec![100, 1_000, 10_000],
        runs: 5,
        quick: false,
        out: Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/showdown"))),
        delay: Duration::from_millis(1_000),
        sleep: (Duration::from_millis(1_000), 100_000),
    };
    let mut sizes_given = false;
    let mut runs_given = false;
    let mut args = args.iter().peekable();
    if let Some(part) = args.next_if(|arg| !arg.starts_with("--")) {
        let only = part.as_str();
        if !["showdown", "micro", "fairness"].contains(&only) {
            return Err(cli::unknown("part", only));
        }
        options.showdown = only == "showdown";
        options.micro = only == "micro";
        options.fairness = only == "fairness";
    }
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value (see --help)"));
        match flag.as_str() {
            "--json" => options.json = true,
            "--quick" => options.quick = true,
            "--no-write" => options.out = None,
            "--out" => options.out = Some(PathBuf::from(value()?)),
            "--sizes" => {
                let text = value()?;
                options.sizes = text
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().with_context(|| format!("--sizes: {n:?} is not a number")))
                    .collect::<anyhow::Result<_>>()?;
                sizes_given = true;
            }
            "--runs" => {
                let text = value()?;
                options.runs = text.parse().with_context(|| format!("--runs takes a number, not {text:?}"))?;
                runs_given = true;
            }
            _ => return Err(cli::unknown("option", flag)),
        }
    }
    if options.quick {
        options.out = None;
        options.sizes = if sizes_given { options.sizes } else { vec![20] };
        options.runs = if runs_given { options.runs } else { 1 };
        options.delay = Duration::from_millis(50);
        options.sleep = (Duration::from_millis(50), 2_000);
    } else if options.runs < 5 {
        bail!("--runs {}: the tables report a median and a range, so at least 5 (or --quick)", options.runs);
    }
    if options.sizes.is_empty() {
        bail!("--sizes needs at least one N");
    }
    Ok(options)
}

/// The hidden [`bench_kit::SERVE`]: chapter 5's async delay server, sized for
/// the largest N, until the parent lets go (as chapter 5's own bench does).
fn serve() -> anyhow::Result<()> {
    use ch05_runtime::server::{AsyncDelayServer, Config};
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

/// `render FILE`: the tables and the chart again, next to `FILE`.
fn render_file(file: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let results = render::Results::parse(&text)?;
    let dir = std::path::Path::new(file).parent().map_or_else(|| PathBuf::from("."), PathBuf::from);
    render::write(&results, &dir, None)?;
    println!("wrote the tables, the chart and the sentences in {} from {file}", dir.display());
    Ok(())
}
