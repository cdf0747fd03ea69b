//! Chapter 4: stackless coroutines as hand-written state machines.
//!
//! `cargo run -p ch04-coroutines` runs the guided demo against an embedded
//! delay server (or the one in `DELAY_SERVER=host:port`):
//!
//! 1. one coroutine awaiting three GETs in a row: the total is the *sum* of
//!    the delays, and every poll / wait / wake phase of the executor shows;
//! 2. `join_all` of several GETs: the total is the *longest* delay, answers
//!    arrive in delay order, results come back in input order;
//! 3. the same program written three ways (callbacks, hand-written state
//!    machine, `async fn` polled with `Waker::noop()`), printing the same lines;
//! 4. the sizes: a coroutine is as large as its largest state, not the sum.
//!
//! `cargo run --release -p ch04-coroutines -- bench` measures 1 000 and
//! 10 000 concurrent GETs through coroutines against chapter 3's raw event
//! loop. `--help` says the same.

mod bench;

use std::io;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config, DemoServer};
use ch01_os_threads::report::Table;
use ch01_os_threads::trace::section;
use ch01_os_threads::{bench_kit, cli};
use ch04_coroutines::callbacks::run_callbacks;
use ch04_coroutines::combinators::{join_all, then};
use ch04_coroutines::coroutine::{self, DELAYS, run_async_fn, run_state_machine};
use ch04_coroutines::future::ready;
use ch04_coroutines::http::{Fetch, Http};
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::{Executor, Stats};

const HELP: &str = "\
ch04-coroutines: stackless coroutines as hand-written state machines

USAGE:
    cargo run -p ch04-coroutines [-- COMMAND]

COMMANDS:
    (none)     the guided demo: one coroutine awaiting three GETs, join_all,
               the same program three ways, and the coroutines' sizes
    bench      1 000 and 10 000 concurrent GETs: coroutines vs chapter 3's
               event loop (use --release; --json: one JSON object per
               figure and line instead of the table)
    --help     this text

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
                             (the demo and the bench)
";

/// The GETs of the `join_all` part: (delay in ms, message).
const JOINED: &[(u64, &str)] = &[(250, "a"), (50, "b"), (200, "c"), (100, "d"), (150, "e")];

fn main() -> ExitCode {
    ch01_os_threads::trace::start();
    ch01_os_threads::cli::quiet_closed_pipes();
    cli::exit_code(run(std::env::args().skip(1).collect()))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(),
        Some("bench") => bench::run(&args[1..]),
        // Hidden: the bench runs this binary again for its server and its runs.
        Some(bench_kit::SERVE) => Ok(bench_kit::serve_delay_server()?),
        Some(bench_kit::RUN) => bench::run_one(&args[1..]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(cli::unknown("command", other)),
    }
}

fn demo() -> anyhow::Result<()> {
    let server = DemoServer::from_env_or_start(Config::default()).context("starting the delay server")?;
    let log = Log::printing();
    let main = log.named("main");
    main.say(server.describe());
    let http = Http { addr: server.addr() };

    // ANCHOR: demo_sequential
    section(1, &format!("one coroutine, {} GETs one after the other ({DELAYS:?} ms): total = the sum", DELAYS.len()));
    let started = Instant::now();
    let (bytes, stats) =
        run_state_machine(http, &log, log.named("coroutine 1")).context("the sequential coroutine failed")?;
    main.say(format!("coroutine 1 returned {bytes} after {} ms; {}", started.elapsed().as_millis(), counts(stats, 1)));
    // ANCHOR_END: demo_sequential

    // ANCHOR: demo_join_all
    let delays: Vec<u64> = JOINED.iter().map(|(delay, _)| *delay).collect();
    section(2, &format!("join_all of {} GETs ({delays:?} ms): total = the longest", JOINED.len()));
    // Coroutine 1 was part 1's; the joined ones go on counting from there.
    let first = 2;
    let last = first + JOINED.len() - 1;
    main.say(format!("coroutines {first} to {last}, one per GET, each a `then`: await the GET, print the answer"));
    let started = Instant::now();
    let mut executor = Executor::new(&log)?;
    let children: Vec<_> = JOINED
        .iter()
        .enumerate()
        .map(|(i, (delay, message))| {
            let say = log.named(&format!("coroutine {}", first + i));
            // A two-step coroutine: await the GET, then print what came back.
            then(http.get(*delay, message), move |body: io::Result<String>| {
                match &body {
                    Ok(text) => say.say(format!("got {text:?} (asked with a {delay} ms delay)")),
                    Err(e) => say.say(format!("failed: {e}")),
                }
                ready(body)
            })
        })
        .collect();
    let bodies = executor.block_on(join_all(children))?;
    let bodies = bodies.into_iter().collect::<io::Result<Vec<String>>>().context("a GET in join_all failed")?;
    main.say(format!(
        "join_all returned {bodies:?} (input order) after {} ms; {}",
        started.elapsed().as_millis(),
        counts(executor.stats(), 1)
    ));
    drop(executor);
    // ANCHOR_END: demo_join_all

    // ANCHOR: demo_three_ways
    section(3, "the same program three ways (executor lines hidden)");
    let quiet = Log::silent();
    let by_callbacks = run_callbacks(http.addr, log.named("callbacks")).context("callbacks")?;
    let (by_hand, _) = run_state_machine(http, &quiet, log.named("hand-written")).context("state machine")?;
    let (by_compiler, _) = run_async_fn(http, &quiet, log.named("async fn")).context("async fn")?;
    let same = log.texts_of("callbacks") == log.texts_of("hand-written")
        && log.texts_of("hand-written") == log.texts_of("async fn");
    main.say(format!(
        "results {by_callbacks} / {by_hand} / {by_compiler}; the three printed the same lines: {}",
        if same { "yes" } else { "NO" }
    ));
    if !same {
        bail!("the three versions of the program printed different lines");
    }
    // ANCHOR_END: demo_three_ways

    section(4, "sizes (size_of, bytes): a coroutine is its largest state, not the sum");
    let (table, verdict) = size_table();
    println!("{table}");
    main.say(verdict);
    Ok(())
}

/// "7 polls, 6 waits, 6 events: 7 <= 1 task + 6 events, no busy loop" for
/// the summary lines: the bound is checked here, not just claimed.
fn counts(stats: Stats, tasks: u64) -> String {
    let Stats { polls, waits, events } = stats;
    let verdict = if polls <= tasks + events {
        format!("{polls} <= {tasks} task(s) + {events} events, no busy loop")
    } else {
        format!("{polls} > {tasks} task(s) + {events} events: polled without events, a busy loop")
    };
    format!("{polls} polls, {waits} waits, {events} events: {verdict}")
}

/// The size table, with the largest state and the sum of the states, and a
/// line saying what the numbers show (computed from them, so it stays true
/// when a state grows).
fn size_table() -> (Table, String) {
    let rows = coroutine::size_table();
    let states: Vec<usize> = rows.iter().filter(|row| row.what.starts_with("state ")).map(|row| row.bytes).collect();
    let (largest, sum) = (states.iter().max().copied().unwrap_or(0), states.iter().sum::<usize>());
    let mut table = Table::new(&["what", "bytes"]);
    for row in &rows {
        table.row(&[row.what.to_string(), row.bytes.to_string()]);
    }
    table.row(&["largest state".to_string(), largest.to_string()]);
    table.row(&["sum of the states".to_string(), sum.to_string()]);
    let enum_size = rows.iter().find(|row| row.what.starts_with("hand-written")).map_or(0, |row| row.bytes);
    let tag = match enum_size.checked_sub(largest) {
        Some(0) => "exactly the largest state: even the tag is free, kept in a niche \
                    (a value some field can never hold)"
            .to_string(),
        Some(extra) => format!("the largest state plus {extra} bytes for the tag (and its alignment)"),
        None => "smaller than its largest state?".to_string(),
    };
    (table, format!("FetchThree is {enum_size} bytes, {tag}; the sum of its states would be {sum}"))
}
