//! # Chapter 2: green threads, the guided demo
//!
//! Fibers ("green threads") with our own stacks and our own context switch,
//! scheduled cooperatively on one OS thread. The demo shows, step by step:
//!
//! 1. three green threads counting and yielding in turn (the classic
//!    interleaving), and how much of its 64 KiB stack each one used;
//! 2. 10 000 green threads yielding 100 times each: a million switches, and
//!    what 10 000 of them cost in memory;
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
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ch01_os_threads::delay_server::{Config as ServerConfig, DemoServer};
use ch01_os_threads::measure::{self, ProcStatus};
use ch01_os_threads::report::{self, Table, bytes, duration, median_of};
use ch01_os_threads::{client, http, say};
use ch02_green_threads::{Config, current_id, run, spawn, stats, yield_now, yield_now_naive};

const HELP: &str = "\
ch02-green-threads: stackful green threads with our own context switch

USAGE:
    cargo run -p ch02-green-threads [-- COMMAND]

COMMANDS:
    (none)     the guided demo: taking turns, 10 000 green threads, starvation
               vs preemption, and a blocking read that stalls everyone
    bench      switch, spawn and memory costs next to ch01's OS threads
               (use --release for real numbers)
    overflow   a green thread overflows its 64 KiB stack on purpose: the guard
               page catches it and the process aborts with a message
    --help     this text

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
";

fn main() -> anyhow::Result<()> {
    ch01_os_threads::trace::start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => demo(),
        ["bench"] => bench(),
        ["overflow"] => overflow(),
        ["--help" | "-h" | "help"] => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown arguments {other:?}\n\n{HELP}"),
    }
}

fn demo() -> anyhow::Result<()> {
    take_turns().context("step 1: taking turns")?;
    ten_thousand().context("step 2: 10 000 green threads")?;
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
/// Step 1: three fibers count to three, yielding after each number.
fn take_turns() -> anyhow::Result<()> {
    say!("main", "step 1: three green threads count to 3, yielding after each number");
    run(Config::measuring_stack_use(), || -> anyhow::Result<()> {
        let mut fibers = Vec::new();
        for _ in 0..3 {
            fibers.push(spawn(|| {
                let mut sum = 0;
                for i in 1..=3 {
                    say!(me(), "count {i}");
                    sum += i;
                    yield_now(); // give the others a turn
                }
                sum
            })?);
        }
        say!("main", "spawned 3 green threads; none has run yet. Joining them lets them run:");
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

// ANCHOR: ten_thousand
/// Step 2: 10 000 fibers, each yielding 100 times.
fn ten_thousand() -> anyhow::Result<()> {
    const FIBERS: usize = 10_000;
    const YIELDS: u64 = 100;
    say!("main", "step 2: {FIBERS} green threads, each adds 1 to a counter and yields, {YIELDS} times");
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
// ANCHOR_END: ten_thousand

// ANCHOR: starvation
/// Step 3: a fiber that never yields, then the same with OS threads.
fn starvation() -> anyhow::Result<()> {
    const HOG: Duration = Duration::from_millis(200);
    say!("main", "step 3: a green thread computes for {} ms without yielding", HOG.as_millis());
    run(Config::default(), || -> anyhow::Result<()> {
        let hog = spawn(|| {
            say!(me(), "computing, never yielding");
            let spins = spin_for(HOG);
            say!(me(), "done after {spins} spins; only now can anyone else run");
        })?;
        let ticker = spawn(|| {
            for i in 1..=3 {
                say!(me(), "tick {i}");
                yield_now();
            }
        })?;
        hog.join()?;
        ticker.join()?;
        Ok(())
    })??;

    say!("main", "the same with two OS threads on one CPU: the kernel preempts the hog");
    let pinned = std::thread::scope(|scope| {
        let hog = scope.spawn(|| {
            let pinned = pin_to_cpu0().is_ok();
            say!("hog thread", "computing, never yielding");
            let spins = spin_for(HOG);
            say!("hog thread", "done after {spins} spins");
            pinned
        });
        scope.spawn(|| {
            let _ = pin_to_cpu0();
            std::thread::sleep(Duration::from_millis(10)); // let the hog start first
            for i in 1..=3 {
                say!("tick thread", "tick {i} (the hog is still computing)");
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        hog.join().unwrap_or(false)
    });
    if !pinned {
        say!("main", "(could not pin both threads to CPU 0: they may simply have run in parallel)");
    }
    Ok(())
}
// ANCHOR_END: starvation

/// Busy work for `how_long`, without yielding; returns how many spins.
fn spin_for(how_long: Duration) -> u64 {
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < how_long {
        spins = black_box(spins + 1);
    }
    spins
}

/// Lets the calling OS thread run only on CPU 0.
fn pin_to_cpu0() -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size we pass; pid 0 = this thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// ANCHOR: blocking_read
/// Step 4: one fiber makes a blocking HTTP request; nobody else can run.
fn blocking_read() -> anyhow::Result<()> {
    let server = DemoServer::from_env_or_start(ServerConfig::default()).context("starting the delay server")?;
    let addr = server.addr();
    say!("main", "step 4: {}", server.describe());
    say!("main", "one green thread asks for a 300 ms answer with a blocking read; another wants to tick");
    run(Config::default(), || -> anyhow::Result<()> {
        let ticker = spawn(|| {
            for i in 1..=3 {
                say!(me(), "tick {i}");
                yield_now();
            }
        })?;
        let reader = spawn(move || -> io::Result<String> {
            say!(me(), "GET /300/slow: blocking in read(), the whole OS thread sleeps");
            let body = client::get(addr, &http::path(300, "slow"))?.into_ok_body()?;
            say!(me(), "got {body:?}");
            Ok(body)
        })?;
        ticker.join()?;
        reader.join()??;
        Ok(())
    })??;
    say!(
        "main",
        "no tick for 300 ms: one blocking call stalled every green thread. Chapter 3 waits with epoll instead"
    );
    Ok(())
}
// ANCHOR_END: blocking_read

// ANCHOR: overflow
/// `overflow`: a fiber recurses far deeper than 64 KiB allows.
fn overflow() -> anyhow::Result<()> {
    say!("main", "a green thread with a 64 KiB stack recurses 10 000 calls deep, 1 KiB per call");
    say!("main", "expect: the guard page stops it, the handler names it, the process aborts");
    let depth = run(Config::default(), || spawn(|| deep(0))?.join().map_err(io::Error::other))??;
    bail!("the recursion returned {depth}: the stack did not overflow")
}

/// One call = at least 1 KiB of stack; stops 10 000 calls deep (10 MiB).
fn deep(depth: u32) -> u32 {
    let frame = black_box([depth as u8; 1024]); // black_box keeps the array really on the stack
    if depth >= 10_000 {
        return u32::from(frame[0]);
    }
    deep(depth + 1).wrapping_add(u32::from(frame[1023]))
}
// ANCHOR_END: overflow

// ---------------------------------------------------------------- the bench

fn bench() -> anyhow::Result<()> {
    const RUNS: usize = 7;
    const STACK: usize = 64 * 1024;
    println!("{}", report::machine());
    say!("main", "measuring, {RUNS} runs each (takes a few seconds)");

    // Switch costs are a few nanoseconds: each run times a million round
    // trips, and the table shows tenths of a nanosecond (`report::duration`
    // rounds to whole ones, which would hide the differences that matter here).
    const TRIPS: u32 = 1_000_000;
    let per_trip = |total: Duration| total.as_secs_f64() * 1e9 / f64::from(TRIPS);
    let nanos = |total: Duration| format!("{:.1} ns", per_trip(total));
    let round_trip = median_of(RUNS, || yield_round_trip::<false>(TRIPS))?;
    let round_trip_naive = median_of(RUNS, || yield_round_trip::<true>(TRIPS))?;
    let bare = median_of(RUNS, || bare::round_trip(bare::Switch::Ours, TRIPS))?;
    let bare_naive = median_of(RUNS, || bare::round_trip(bare::Switch::Naive, TRIPS))?;
    let bare_no_fp = median_of(RUNS, || bare::round_trip(bare::Switch::WithoutFloatControl, TRIPS))?;
    let spawn_recycled = median_of(RUNS, || spawn_join(20_000, Config::default()))?;
    let spawn_measured = median_of(RUNS, || spawn_join(5_000, Config::measuring_stack_use()))?;
    let spawn_fresh = median_of(RUNS, || spawn_join(300, Config { max_free_stacks: 0, ..Config::default() }))?;
    let memory = fiber_memory(10_000)?;

    let os_hand_over = median_of(RUNS, || measure::ping_pong(2_000, true)).context("ch01 ping-pong")?;
    // Pinned to one CPU, like the hand-over row: unpinned, a new OS thread sometimes starts on the other
    // CPU and the number jumps between runs (see ch01's bench).
    let os_spawn =
        median_of(RUNS, || measure::on_one_cpu(|| measure::spawn_join(300, STACK))).context("ch01 spawn+join")?;
    let os_memory = measure::memory_per_parked_thread(1_000, STACK).context("ch01 memory per thread")?;

    let ratio = |os: Duration, green: Duration| format!("{:.0}x", os.as_secs_f64() / green.as_secs_f64().max(1e-12));
    let mut table = Table::new(&["what (64 KiB stacks)", "green thread (ch02)", "OS thread (ch01)", "OS / green"]);
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
    println!(
        "OS threads pinned to one CPU: switch = two hand-overs (ch01 ping_pong), spawn + join (ch01 spawn_join). \
         Memory: 10 000 green threads / 1 000 OS threads parked at once, from /proc/self/status."
    );
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
