//! # Chapter 2: green threads, the guided demo
//!
//! Fibers ("green threads") with our own stacks and our own context switch,
//! scheduled cooperatively on one OS thread. The demo shows, step by step:
//!
//! 1. a few green threads counting and yielding in turn (the classic
//!    interleaving), and how much of its stack each one used;
//! 2. many green threads yielding many times each: a million switches, and
//!    what they cost in memory;
//! 3. cooperative vs preemptive: a green thread that never yields starves the
//!    others, while the kernel preempts an OS thread that hogs the CPU;
//! 4. a green thread doing a blocking read stalls every green thread: the
//!    reason chapter 3 turns to epoll;
//! 5. taking the CPU back: a green thread that spins forever beside two
//!    that print, cooperatively (it starves them), then with checkpoints a
//!    timer arms, then with asynchronous preemption by signal.
//!
//! ```text
//! cargo run -p ch02-green-threads                      # the guided demo
//! cargo run --release -p ch02-green-threads -- bench   # switch, spawn and memory costs vs OS threads
//! cargo run -p ch02-green-threads -- preempt           # step 5 only: taking the CPU back
//! cargo run -p ch02-green-threads -- overflow          # hit a guard page on purpose (the process aborts)
//! cargo run -p ch02-green-threads -- --help
//! ```
//!
//! `DELAY_SERVER=host:port` makes step 4 use that delay server instead of an
//! embedded one.

mod bench;

use std::cell::Cell;
use std::hint::black_box;
use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ch01_os_threads::delay_server::{Config as ServerConfig, DemoServer};
use ch01_os_threads::measure::ProcStatus;
use ch01_os_threads::report::{bytes, duration};
use ch01_os_threads::trace::section;
use ch01_os_threads::{cli, client, http, say, sys};
use ch02_green_threads::preemptible::{self, Spun};
use ch02_green_threads::{Config, Preempt, current_id, preempt, run, spawn, stats, yield_now};

const HELP: &str = "\
ch02-green-threads: stackful green threads with our own context switch

USAGE:
    cargo run -p ch02-green-threads [-- COMMAND]

COMMANDS:
    (none)     the guided demo: taking turns, many green threads, starvation
               vs preemption, a blocking read that stalls everyone, and
               taking the CPU back from a green thread that never yields
    preempt    only that last step: cooperative, checkpoints, asynchronous
    bench      switch, spawn and memory costs next to ch01's OS threads,
               and the going-faster inline switch (use --release for real
               numbers; --json: one JSON object per figure and line)
    overflow   a green thread overflows its stack on purpose: the guard page
               catches it and the process aborts with a message
    --help     this text

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
                             (step 4)
";

fn main() -> ExitCode {
    ch01_os_threads::trace::start();
    ch01_os_threads::cli::quiet_closed_pipes();
    cli::exit_code(run_command(std::env::args().skip(1).collect()))
}

fn run_command(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(),
        Some("bench") => bench::run(&args[1..]),
        Some("preempt") => take_back(),
        Some("overflow") => overflow(),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(cli::unknown("command", other)),
    }
}

fn demo() -> anyhow::Result<()> {
    take_turns().context("step 1: taking turns")?;
    many().context("step 2: many green threads")?;
    starvation().context("step 3: cooperative vs preemptive")?;
    blocking_read().context("step 4: a blocking read")?;
    take_back().context("step 5: taking the CPU back")?;
    say!("main", "done");
    Ok(())
}

/// The trace name of the running fiber: `main` or `fiber N`.
fn me() -> String {
    match current_id() {
        Some(0) | None => "main".to_string(),
        Some(id) => format!("fiber {id}"),
    }
}

// ANCHOR: take_turns
/// Step 1: a few fibers count, yielding after each number.
fn take_turns() -> anyhow::Result<()> {
    const FIBERS: usize = 3;
    const COUNT: u32 = 3;
    section(1, &format!("{FIBERS} green threads count to {COUNT}, yielding after each number"));
    run(Config::measuring_stack_use(), || -> anyhow::Result<()> {
        let mut fibers = Vec::new();
        for _ in 0..FIBERS {
            fibers.push(spawn(|| {
                let mut sum = 0;
                for i in 1..=COUNT {
                    say!(me(), "count {i}");
                    sum += i;
                    yield_now(); // give the others a turn
                }
                sum
            })?);
        }
        say!("main", "spawned {FIBERS} green threads; none has run yet. Joining them lets them run:");
        for fiber in fibers {
            let (sum, stats) = fiber.join_with_stats();
            let used = stats.stack_used.map_or("?".to_string(), |b| bytes(b as u64));
            say!(
                "main",
                "fiber {} returned {}; it used {used} of its {} stack",
                stats.id,
                sum?,
                bytes(stats.stack_size as u64)
            );
        }
        Ok(())
    })?
}
// ANCHOR_END: take_turns

// ANCHOR: many
/// Step 2: many fibers, each yielding many times.
fn many() -> anyhow::Result<()> {
    const FIBERS: usize = 10_000;
    const YIELDS: u64 = 100;
    section(2, &format!("{FIBERS} green threads, each adds 1 to a counter and yields, {YIELDS} times"));
    let before = ProcStatus::read()?;
    let start = Instant::now();
    let (total, parked, stats) = run(Config::measuring_stack_use(), || -> io::Result<_> {
        let counter = Rc::new(Cell::new(0u64));
        let mut fibers = Vec::with_capacity(FIBERS);
        for _ in 0..FIBERS {
            let counter = Rc::clone(&counter);
            fibers.push(spawn(move || {
                for _ in 0..YIELDS {
                    counter.set(counter.get() + 1);
                    yield_now();
                }
            })?);
        }
        yield_now(); // one round: every fiber runs once and parks in its first yield
        let parked = ProcStatus::read()?;
        for fiber in fibers {
            fiber.join().map_err(io::Error::other)?;
        }
        let stats = stats().ok_or_else(|| io::Error::other("stats() outside run"))?;
        Ok((counter.get(), parked, stats))
    })??;
    let elapsed = start.elapsed();
    say!(
        "main",
        "counter = {total} (expected {}), in {} including spawning; {} switches",
        FIBERS as u64 * YIELDS,
        duration(elapsed),
        FIBERS as u64 * (YIELDS + 1)
    );
    let per = |after: u64, before: u64| bytes(after.saturating_sub(before) / FIBERS as u64);
    say!(
        "main",
        "with all {FIBERS} parked: {} reserved (virtual) per green thread, {} resident",
        per(parked.virtual_bytes, before.virtual_bytes),
        per(parked.resident_bytes, before.resident_bytes)
    );
    say!(
        "main",
        "stacks: deepest use {} of {}, mean {}; {} of them are kept mapped for reuse",
        bytes(stats.max_stack_used as u64),
        bytes(stats.stack_size as u64),
        bytes(stats.total_stack_used / stats.measured.max(1)),
        stats.stacks_free
    );
    Ok(())
}
// ANCHOR_END: many

/// How often step 3's hog yields: `None`, never (that is the point). Try
/// `Some(100_000)`: every line step 3 prints follows what the hog did.
const HOG_YIELDS_EVERY: Option<u64> = None;

// ANCHOR: starvation
/// Step 3: a fiber that computes for a while, then the same with OS threads.
fn starvation() -> anyhow::Result<()> {
    const HOG: Duration = Duration::from_millis(200);
    const TICKS: u32 = 3;
    section(3, &format!("a green thread computes for {} ms, another wants to tick", HOG.as_millis()));
    let how = HOG_YIELDS_EVERY.map_or("never yielding".to_string(), |n| format!("yielding every {n} spins"));
    // What the ticker saw, counted, so the verdict below is measured, not claimed.
    let hog_running = Rc::new(Cell::new(false));
    let ticks_meanwhile = Rc::new(Cell::new(0));
    run(Config::default(), || -> anyhow::Result<()> {
        let running = Rc::clone(&hog_running);
        let hog = spawn(move || {
            say!(me(), "computing, {how}");
            running.set(true);
            let (spins, yields) = spin_for(HOG, HOG_YIELDS_EVERY);
            running.set(false);
            say!(me(), "done after {spins} spins and {yields} yields");
        })?;
        let (running, meanwhile) = (Rc::clone(&hog_running), Rc::clone(&ticks_meanwhile));
        let ticker = spawn(move || {
            for i in 1..=TICKS {
                let note = if running.get() { " (the hog is still computing)" } else { "" };
                meanwhile.set(meanwhile.get() + u32::from(running.get()));
                say!(me(), "tick {i}{note}");
                yield_now();
            }
        })?;
        hog.join()?;
        ticker.join()?;
        Ok(())
    })??;
    let verdict = match ticks_meanwhile.get() {
        0 => "a green thread that does not yield keeps every other one waiting",
        _ => "the hog yielded, so the ticker had turns: cooperation",
    };
    say!("main", "the ticker ticked {} of {TICKS} times while the hog computed: {verdict}", ticks_meanwhile.get());

    // The same with OS threads, both pinned to one CPU, so they cannot simply
    // run side by side on two: only preemption lets the ticker in.
    let cpu = sys::allowed_cpus()?.first().copied().context("no CPU to run on")?;
    say!("main", "the same with two OS threads on CPU {cpu}: the kernel preempts the hog");
    let running = AtomicBool::new(false);
    let (pinned, meanwhile) = std::thread::scope(|scope| {
        let hog = scope.spawn(|| {
            let pin = sys::pin_to_cpu(cpu);
            say!("hog thread", "computing, never yielding");
            running.store(true, Ordering::SeqCst);
            let (spins, _) = spin_for(HOG, None);
            running.store(false, Ordering::SeqCst);
            say!("hog thread", "done after {spins} spins");
            pin.is_ok()
        });
        let ticker = scope.spawn(|| {
            let pin = sys::pin_to_cpu(cpu);
            let mut meanwhile = 0;
            // Start ticking once the hog computes (a bounded wait: the hog sets the flag first thing).
            let give_up = Instant::now() + Duration::from_secs(10);
            while !running.load(Ordering::SeqCst) && Instant::now() < give_up {
                std::thread::yield_now();
            }
            for i in 1..=TICKS {
                let during = running.load(Ordering::SeqCst);
                meanwhile += u32::from(during);
                say!("tick thread", "tick {i}{}", if during { " (the hog is still computing)" } else { "" });
                std::thread::sleep(HOG / (TICKS + 2));
            }
            (pin.is_ok(), meanwhile)
        });
        let hog_pinned = hog.join().unwrap_or(false);
        let (ticker_pinned, meanwhile) = ticker.join().unwrap_or((false, 0));
        (hog_pinned && ticker_pinned, meanwhile)
    });
    say!("main", "the tick thread ticked {meanwhile} of {TICKS} times while the hog computed");
    if !pinned {
        say!("main", "(could not pin both threads to CPU {cpu}: they may simply have run in parallel)");
    }
    Ok(())
}
// ANCHOR_END: starvation

/// Busy work for `how_long`, yielding every `yield_every` spins if given;
/// returns how many spins and how many yields.
fn spin_for(how_long: Duration, yield_every: Option<u64>) -> (u64, u64) {
    let start = Instant::now();
    let (mut spins, mut yields) = (0u64, 0u64);
    while start.elapsed() < how_long {
        spins = black_box(spins + 1);
        if yield_every.is_some_and(|n| spins.is_multiple_of(n.max(1))) {
            yield_now();
            yields += 1;
        }
    }
    (spins, yields)
}

// ANCHOR: blocking_read
/// Step 4: one fiber makes a blocking HTTP request; nobody else can run.
fn blocking_read() -> anyhow::Result<()> {
    const DELAY_MS: u64 = 300;
    section(4, "a green thread blocks in read(); another wants to tick");
    let server = DemoServer::from_env_or_start(ServerConfig::default()).context("starting the delay server")?;
    let addr = server.addr();
    say!("main", "{}", server.describe());
    say!("main", "one green thread asks for a {DELAY_MS} ms answer with a blocking read; another wants to tick");
    let tick_times: Rc<Cell<[Option<Instant>; 2]>> = Rc::default();
    run(Config::default(), || -> anyhow::Result<()> {
        let times = Rc::clone(&tick_times);
        let ticker = spawn(move || {
            for i in 1..=3 {
                say!(me(), "tick {i}");
                if i <= 2 {
                    let mut seen = times.get();
                    seen[i - 1] = Some(Instant::now());
                    times.set(seen);
                }
                yield_now();
            }
        })?;
        let reader = spawn(move || -> io::Result<String> {
            let path = http::path(DELAY_MS, "slow");
            say!(me(), "GET {path}: blocking in read(), the whole OS thread sleeps");
            let body = client::get(addr, &path)?.into_ok_body()?;
            say!(me(), "got {body:?}");
            Ok(body)
        })?;
        ticker.join()?;
        reader.join()??;
        Ok(())
    })??;
    if let [Some(first), Some(second)] = tick_times.get() {
        say!(
            "main",
            "{} ms between tick 1 and tick 2: one blocking call stalled every green thread. \
             Chapter 3 waits with epoll instead",
            (second - first).as_millis()
        );
    }
    Ok(())
}
// ANCHOR_END: blocking_read

// ANCHOR: overflow
/// The fiber's stack in `overflow`.
const OVERFLOW_STACK: usize = 64 * 1024;
/// How deep `deep` recurses.
const DEPTH: u32 = 10_000;
/// The bytes each call of `deep` keeps on the stack (at least).
const FRAME: usize = 1024;

/// `overflow`: a fiber recurses deeper than its stack allows.
fn overflow() -> anyhow::Result<()> {
    let (stack, frame) = (bytes(OVERFLOW_STACK as u64), bytes(FRAME as u64));
    say!("main", "a green thread with a {stack} stack recurses {DEPTH} calls deep, {frame} per call");
    if DEPTH as usize * FRAME > OVERFLOW_STACK {
        say!("main", "expect: the guard page stops it, the handler names it, the process aborts");
    } else {
        say!("main", "expect: {DEPTH} calls of {frame} fit in {stack}: it returns");
    }
    let config = Config { stack_size: OVERFLOW_STACK, ..Config::default() };
    let depth = run(config, || spawn(|| deep(0))?.join().map_err(io::Error::other))??;
    say!("main", "the recursion returned {depth}: the stack did not overflow");
    Ok(())
}

/// One call = at least `FRAME` bytes of stack; stops `DEPTH` calls deep.
fn deep(depth: u32) -> u32 {
    let frame = black_box([depth as u8; FRAME]); // black_box keeps the array really on the stack
    if depth >= DEPTH {
        return u32::from(frame[0]);
    }
    deep(depth + 1).wrapping_add(u32::from(frame[FRAME - 1]))
}
// ANCHOR_END: overflow

/// Step 5's quantum: how long the timer lets a green thread run before its
/// time is up. Try 1 ms: more forced switches, the same latencies.
const QUANTUM: Duration = Duration::from_millis(10);
/// Lines each printer prints in step 5.
const LINES: u32 = 3;
/// Where step 5's spinner gives up by itself when nothing preempts it:
/// nothing else would ever end it (rounds of 64 xor-shift-multiplies).
const SPIN_BOUND: u64 = 300_000;
/// The same with preemption, where the printers' end stops the spinner long
/// before: only a preemption that failed would get there.
const SPIN_BOUND_PREEMPTED: u64 = 20 * SPIN_BOUND;

// ANCHOR: take_back
/// Step 5: a fiber spins, never yielding, beside two that print; three
/// runtimes, three ways of getting the CPU back from it.
fn take_back() -> anyhow::Result<()> {
    section(
        5,
        &format!("taking the CPU back: a green thread spins and never yields, two others print {LINES} lines each"),
    );
    let ways = [Preempt::Off, Preempt::Checkpoints { quantum: QUANTUM }, Preempt::Asynchronous { quantum: QUANTUM }];
    for preempt in ways {
        spinner_and_printers(preempt)?;
    }
    Ok(())
}

/// One spinner and two printers on a runtime that preempts as `preempt` says.
fn spinner_and_printers(preempt: Preempt) -> anyhow::Result<()> {
    let (spin_how, with) = match preempt {
        Preempt::Off => (
            "never yielding".to_string(),
            format!(
                "cooperative (Preempt::Off): nothing takes the CPU from the spinner, which stops after {SPIN_BOUND} rounds"
            ),
        ),
        Preempt::Checkpoints { quantum } => (
            "calling checkpoint() once a round".to_string(),
            format!(
                "checkpoints (Preempt::Checkpoints, {} quantum): a timer says when its time is up",
                millis(quantum)
            ),
        ),
        Preempt::Asynchronous { quantum } => (
            format!("{} the preempt_text section, never calling checkpoint()", spin_is_in_the_section()),
            format!("asynchronous (Preempt::Asynchronous, {} quantum): a signal takes the CPU back", millis(quantum)),
        ),
    };
    say!("main", "{with}");
    let spinning = Rc::new(Cell::new(false));
    let lines_meanwhile = Rc::new(Cell::new(0));
    let bound = if preempt == Preempt::Off { SPIN_BOUND } else { SPIN_BOUND_PREEMPTED };
    let (stats, latencies) = run(Config::preempting(preempt), || -> anyhow::Result<_> {
        let stop = Rc::new(AtomicBool::new(false));
        let (spinner_stop, running) = (Rc::clone(&stop), Rc::clone(&spinning));
        let spinner = spawn(move || {
            say!(me(), "spinning, {spin_how}");
            running.set(true);
            let progress = AtomicU64::new(0);
            let spun: Spun = match preempt {
                Preempt::Checkpoints { .. } => preemptible::spin_with_checkpoints(&spinner_stop, &progress, bound),
                _ => preemptible::spin(&spinner_stop, &progress, bound),
            };
            running.set(false);
            let why = if spun.stopped { "told to stop" } else { "at its bound" };
            say!(me(), "stopped ({why}) after {} rounds", spun.rounds);
        })?;
        let mut printers = Vec::new();
        for _ in 0..2 {
            let (running, meanwhile) = (Rc::clone(&spinning), Rc::clone(&lines_meanwhile));
            printers.push(spawn(move || {
                for i in 1..=LINES {
                    let note = if running.get() { " (the spinner is still spinning)" } else { "" };
                    meanwhile.set(meanwhile.get() + u32::from(running.get()));
                    say!(me(), "line {i}{note}");
                    yield_now();
                }
            })?);
        }
        for printer in printers {
            printer.join()?;
        }
        stop.store(true, Ordering::Relaxed); // the printers are done: the spinner may stop
        spinner.join()?;
        let stats = stats().context("stats() outside run")?;
        Ok((stats, preempt::latencies().unwrap_or_default()))
    })??;
    let forced = stats.preempted_at_checkpoints + stats.preempted_asynchronously;
    let mut summary =
        format!("the printers printed {} of their {} lines while the spinner spun", lines_meanwhile.get(), 2 * LINES);
    if preempt != Preempt::Off {
        summary += &format!(
            "; {forced} forced switches ({} at checkpoints, {} asynchronous) in {} ticks",
            stats.preempted_at_checkpoints, stats.preempted_asynchronously, stats.ticks
        );
    }
    say!("main", "{summary}");
    if let Some((median, max)) = median_and_max(latencies) {
        say!(
            "main",
            "each switch came {} (median; at most {}) after the quantum ended",
            duration(median),
            duration(max)
        );
    }
    Ok(())
}
// ANCHOR_END: take_back

/// Where `preemptible::spin` is: `in` the preemptible section, or
/// `outside` it (if its `link_section` attribute is taken off).
fn spin_is_in_the_section() -> &'static str {
    let spin = preemptible::spin as fn(&AtomicBool, &AtomicU64, u64) -> Spun as usize;
    if preempt::section().contains(&spin) { "in" } else { "outside" }
}

/// A quantum as the code writes it: `10 ms`, or with a fraction if it has one.
fn millis(quantum: Duration) -> String {
    match quantum.subsec_nanos() % 1_000_000 {
        0 => format!("{} ms", quantum.as_millis()),
        _ => duration(quantum),
    }
}

/// The median and the largest of some durations; `None` if there are none.
fn median_and_max(mut durations: Vec<Duration>) -> Option<(Duration, Duration)> {
    durations.sort();
    Some((*durations.get(durations.len() / 2)?, *durations.last()?))
}
