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
//!    reason chapter 3 turns to epoll.
//!
//! ```text
//! cargo run -p ch02-green-threads                      # the guided demo
//! cargo run --release -p ch02-green-threads -- bench   # switch, spawn and memory costs vs OS threads
//! cargo run -p ch02-green-threads -- overflow          # hit a guard page on purpose (the process aborts)
//! cargo run -p ch02-green-threads -- --help
//! ```
//!
//! `DELAY_SERVER=host:port` makes step 4 use that delay server instead of an
//! embedded one.

use std::cell::Cell;
use std::hint::black_box;
use std::io;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ch01_os_threads::bench_kit::Progress;
use ch01_os_threads::delay_server::{Config as ServerConfig, DemoServer};
use ch01_os_threads::measure::{self, ProcStatus};
use ch01_os_threads::report::{self, Table, bytes, duration, median_of};
use ch01_os_threads::trace::section;
use ch01_os_threads::{cli, client, http, say, sys};
use ch02_green_threads::{Config, current_id, run, spawn, stats, yield_now, yield_now_naive};

const HELP: &str = "\
ch02-green-threads: stackful green threads with our own context switch

USAGE:
    cargo run -p ch02-green-threads [-- COMMAND]

COMMANDS:
    (none)     the guided demo: taking turns, many green threads, starvation
               vs preemption, and a blocking read that stalls everyone
    bench      switch, spawn and memory costs next to ch01's OS threads
               (use --release for real numbers)
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
        Some("bench") => bench(),
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

// ---------------------------------------------------------------- the bench

fn bench() -> anyhow::Result<()> {
    const RUNS: usize = 7;
    const STACK: usize = 64 * 1024;
    const GREEN_PARKED: usize = 10_000;
    const OS_PARKED: usize = 1_000;
    println!("{}", report::machine());
    say!("main", "measuring, {RUNS} runs each (takes a few seconds)");
    let mut progress = Progress::new(10 * RUNS + 2);
    let mut step = |what: &str| {
        progress.start(what);
        progress.finish_step();
    };
    let mut median = |what: &str, f: &dyn Fn() -> io::Result<Duration>| {
        median_of(RUNS, || {
            step(what);
            f()
        })
    };

    // Switch costs are a few nanoseconds: each run times a million round
    // trips, and the table shows tenths of a nanosecond (`report::duration`
    // rounds to whole ones, which would hide the differences that matter here).
    const TRIPS: u32 = 1_000_000;
    let per_trip = |total: Duration| total.as_secs_f64() * 1e9 / f64::from(TRIPS);
    let nanos = |total: Duration| format!("{:.1} ns", per_trip(total));
    let round_trip = median("yield round trip", &|| yield_round_trip::<false>(TRIPS))?;
    let round_trip_naive = median("yield round trip, naive switch", &|| yield_round_trip::<true>(TRIPS))?;
    let bare = median("bare switch", &|| bare::round_trip(bare::Switch::Ours, TRIPS))?;
    let bare_naive = median("bare switch, naive", &|| bare::round_trip(bare::Switch::Naive, TRIPS))?;
    let bare_no_fp =
        median("bare switch, no control words", &|| bare::round_trip(bare::Switch::WithoutFloatControl, TRIPS))?;
    let spawn_recycled = median("spawn + join", &|| spawn_join(20_000, Config::default()))?;
    let spawn_measured = median("spawn + join, measuring", &|| spawn_join(5_000, Config::measuring_stack_use()))?;
    let fresh = Config { max_free_stacks: 0, ..Config::default() };
    let spawn_fresh = median("spawn + join, fresh stacks", &|| spawn_join(300, fresh))?;
    // Pinned to one CPU: unpinned, a new OS thread sometimes starts on another
    // CPU and the number jumps between runs (see ch01's bench).
    let os_hand_over = median("OS hand-over", &|| measure::ping_pong(2_000, true)).context("ch01 ping-pong")?;
    let os_spawn = median("OS spawn + join", &|| measure::on_one_cpu(|| measure::spawn_join(300, STACK)))
        .context("ch01 spawn+join")?;
    step(&format!("memory of {GREEN_PARKED} parked green threads"));
    let memory = fiber_memory(GREEN_PARKED)?;
    step(&format!("memory of {OS_PARKED} parked OS threads"));
    let os_memory = measure::memory_per_parked_thread(OS_PARKED, STACK).context("ch01 memory per thread")?;
    drop(progress);

    let ratio = |os: Duration, green: Duration| format!("{:.0}x", os.as_secs_f64() / green.as_secs_f64().max(1e-12));
    let what = format!("what ({} stacks)", bytes(STACK as u64));
    let mut table = Table::new(&[what.as_str(), "green thread (ch02)", "OS thread (ch01)", "OS / green"]);
    table
        .row(&[
            "switch there and back (yield round trip)",
            &nanos(round_trip),
            &duration(os_hand_over * 2),
            &format!("{:.0}x", (os_hand_over * 2).as_secs_f64() * 1e9 / per_trip(round_trip)),
        ])
        .row(&["  same, naive switch (ends in `ret`)", &nanos(round_trip_naive), "", ""])
        .row(&[
            "  bare switch, no scheduler: ours / naive",
            &format!("{} / {}", nanos(bare), nanos(bare_naive)),
            "",
            "",
        ])
        .row(&["  bare switch, not saving MXCSR / x87 control", &nanos(bare_no_fp), "", ""])
        .row(&[
            "spawn + join, empty (stack from the free list)",
            &duration(spawn_recycled),
            &duration(os_spawn),
            &ratio(os_spawn, spawn_recycled),
        ])
        .row(&["  same, measuring stack use", &duration(spawn_measured), "", ""])
        .row(&["  same, fresh mmap for every stack", &duration(spawn_fresh), "", ""])
        .row(&["memory reserved (virtual) each", &bytes(memory.0), &bytes(os_memory.virtual_per_thread), ""])
        .row(&["memory resident each, after running", &bytes(memory.1), &bytes(os_memory.resident_per_thread), ""]);
    print!("{table}");
    let legend = format!(
        "Medians of {RUNS} runs. OS threads pinned to one CPU: switch = two hand-overs (ch01 ping_pong), spawn + \
         join (ch01 spawn_join). Memory: {GREEN_PARKED} green threads / {OS_PARKED} OS threads parked at once, \
         from /proc/self/status."
    );
    print!("{}", report::wrap(&legend, 100, ""));
    Ok(())
}

// ANCHOR: bench_round_trip
/// Total time of `n` round trips main -> fiber -> main. `NAIVE` picks the switch that ends in `ret`. Each loop calls the
/// (inlined) yield from its own code, as real fibers do.
fn yield_round_trip<const NAIVE: bool>(n: u32) -> io::Result<Duration> {
    let yield_once = || if NAIVE { yield_now_naive() } else { yield_now() };
    run(Config::default(), || {
        let partner = spawn(move || {
            for _ in 0..n {
                yield_once();
            }
        })?;
        let start = Instant::now();
        for _ in 0..n {
            yield_once();
        }
        let elapsed = start.elapsed();
        partner.join().map_err(io::Error::other)?;
        Ok(elapsed)
    })?
}
// ANCHOR_END: bench_round_trip

/// Average time to spawn an empty fiber and join it, over `n` of them.
fn spawn_join(n: u32, config: Config) -> io::Result<Duration> {
    run(config, || {
        spawn(|| ())?.join().map_err(io::Error::other)?; // warm up: the first stack is always fresh
        let start = Instant::now();
        for _ in 0..n {
            spawn(|| ())?.join().map_err(io::Error::other)?;
        }
        Ok(start.elapsed() / n)
    })?
}

/// Virtual and resident bytes per fiber with `n` fibers parked at once
/// (each has run up to its first yield).
fn fiber_memory(n: usize) -> io::Result<(u64, u64)> {
    let before = ProcStatus::read()?;
    let during = run(Config::default(), || {
        let mut fibers = Vec::with_capacity(n);
        for _ in 0..n {
            fibers.push(spawn(yield_now)?);
        }
        yield_now();
        let during = ProcStatus::read()?;
        for fiber in fibers {
            fiber.join().map_err(io::Error::other)?;
        }
        Ok::<_, io::Error>(during)
    })??;
    let per = |after: u64, before: u64| after.saturating_sub(before) / n.max(1) as u64;
    Ok((per(during.virtual_bytes, before.virtual_bytes), per(during.resident_bytes, before.resident_bytes)))
}

/// The bare switch, without any runtime: two contexts ping-ponging through
/// the switch directly, to see the switch's own cost.
mod bare {
    use std::arch::naked_asm;
    use std::io;
    use std::time::{Duration, Instant};

    use ch02_green_threads::arch;
    use ch02_green_threads::stack::Stack;

    /// Which switch function to measure.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Switch {
        /// `arch::switch`: ends in `jmp`.
        Ours,
        /// `arch::switch_naive`: ends in `ret`.
        Naive,
        /// `switch_without_float_control` below: what the control words cost.
        WithoutFloatControl,
    }

    type SwitchFn = unsafe extern "sysv64" fn(*mut *mut u8, *mut u8);

    impl Switch {
        fn function(self) -> SwitchFn {
            match self {
                Switch::Ours => arch::switch,
                Switch::Naive => arch::switch_naive,
                Switch::WithoutFloatControl => switch_without_float_control,
            }
        }
    }

    // ANCHOR: without_float_control
    /// `arch::switch` minus the MXCSR and x87 control word, for the bench
    /// only. Not a complete switch for the System V ABI, and it leaves the
    /// control-word slot unwritten, so its frames must never be resumed by
    /// `arch::switch`: only `round_trip` uses it, for both sides.
    ///
    /// # Safety
    ///
    /// As for `arch::switch`, and both contexts must only ever be switched by
    /// this function.
    #[unsafe(naked)]
    unsafe extern "sysv64" fn switch_without_float_control(save_sp_into: *mut *mut u8, resume_sp: *mut u8) {
        naked_asm!(
            "push rbp", // the six callee-saved registers, as in arch::switch
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "sub rsp, 8",     // the same frame layout, but the slot stays unwritten
            "mov [rdi], rsp", // publish our stack pointer
            "mov rsp, rsi",   // take the other one
            "add rsp, 8",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "pop rcx", // resume with an indirect jump, as arch::switch does
            "jmp rcx",
        )
    }
    // ANCHOR_END: without_float_control

    /// The two saved stack pointers, and the switch both sides use.
    struct Pair {
        main: *mut u8,
        partner: *mut u8,
        switch: SwitchFn,
    }

    /// The partner context: switch back to main, forever.
    extern "sysv64" fn partner(arg: *mut u8) -> ! {
        let pair = arg.cast::<Pair>();
        loop {
            // SAFETY: `pair` outlives every switch (see `round_trip`), and
            // main's saved stack pointer is valid whenever we run.
            unsafe { ((*pair).switch)(&raw mut (*pair).partner, (*pair).main) }
        }
    }

    /// Total time of `n` round trips main -> partner -> main.
    pub fn round_trip(which: Switch, n: u32) -> io::Result<Duration> {
        let stack = Stack::new(16 * 1024)?;
        let switch = which.function();
        let mut pair = Box::new(Pair { main: std::ptr::null_mut(), partner: std::ptr::null_mut(), switch });
        let pair_ptr: *mut Pair = &mut *pair;
        // SAFETY: the stack is fresh and its top 16-byte aligned; the partner
        // never returns. (The initial frame holds the default control words,
        // so any of the three switches may start it.)
        unsafe { (*pair_ptr).partner = arch::init_stack(stack.top(), partner, pair_ptr.cast()) };
        let start = Instant::now();
        for _ in 0..n {
            // SAFETY: the partner's saved stack pointer is valid (fresh from
            // init_stack, or saved by its last switch) and its stack mapped.
            unsafe { switch(&raw mut (*pair_ptr).main, (*pair_ptr).partner) }
        }
        let elapsed = start.elapsed();
        // The partner stays suspended in its loop for good. It owns nothing
        // on its stack (only a copy of the pointer), so unmapping the stack
        // under it is harmless.
        drop(stack);
        drop(pair);
        Ok(elapsed)
    }
}
