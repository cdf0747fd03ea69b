//! `bench`: what a green thread costs next to an OS thread, and where the
//! nanoseconds of a switch go: the teaching switch, the naive one, the bare
//! switch without a scheduler, and the going-faster inline switch. Then
//! what taking the CPU back costs: a checkpoint, how late a forced switch
//! comes after its quantum, what preemption does to a compute loop, and
//! the kernel's own time slice for two spinning OS threads.
//!
//! `bench --json` prints the same figures as one JSON object per line.

use std::io;
use std::time::Duration;

use anyhow::Context;
use ch01_os_threads::bench_kit::Progress;
use ch01_os_threads::measure as threads;
use ch01_os_threads::report::{self, Figures, Table, bytes, duration, median_of};
use ch01_os_threads::{cli, say};
use ch02_green_threads::measure::{
    CheckpointCost, SUM_CHUNK, SWITCHED_OUT, checkpoint_cost, compute_three, os_time_slices, parked_memory,
    preemption_latencies, spawn_join, yield_round_trips,
};
use ch02_green_threads::{Config, Preempt, Switch};

/// Runs of each measurement (the table shows medians).
const RUNS: usize = 7;

/// `bench [--json]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (json, rest) = report::json_flag(args);
    if let Some(other) = rest.first() {
        return Err(cli::unknown("bench option", other));
    }
    const STACK: usize = 64 * 1024;
    const GREEN_PARKED: usize = 10_000;
    const OS_PARKED: usize = 1_000;
    if !json {
        println!("{}", report::machine());
        say!("main", "measuring, {RUNS} runs each (takes a few seconds)");
    }
    let mut progress = Progress::new(14 * RUNS + 2 + PREEMPT_STEPS * RUNS + 1);
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
    let teaching = Config::default();
    let inline = Config::switching_with(Switch::INLINE);
    let inline_float = Config::switching_with(Switch::Inline { save_float_control: true });
    let round_trip = median("yield round trip", &|| yield_round_trips::<false>(teaching, TRIPS))?;
    let round_trip_naive = median("yield round trip, naive switch", &|| yield_round_trips::<true>(teaching, TRIPS))?;
    let bare = median("bare switch", &|| bare::round_trip(bare::Switch::Ours, TRIPS))?;
    let bare_naive = median("bare switch, naive", &|| bare::round_trip(bare::Switch::Naive, TRIPS))?;
    let bare_no_fp =
        median("bare switch, no control words", &|| bare::round_trip(bare::Switch::WithoutFloatControl, TRIPS))?;
    let fast = median("yield round trip, inline switch", &|| yield_round_trips::<false>(inline, TRIPS))?;
    let fast_float =
        median("yield round trip, inline + control words", &|| yield_round_trips::<false>(inline_float, TRIPS))?;
    let bare_inline = median("bare inline switch", &|| bare::inline_round_trip::<false>(TRIPS))?;
    let bare_inline_float = median("bare inline switch + control words", &|| bare::inline_round_trip::<true>(TRIPS))?;
    let spawn_recycled = median("spawn + join", &|| spawn_join(20_000, teaching))?;
    let spawn_inline = median("spawn + join, inline switch", &|| spawn_join(20_000, inline))?;
    let spawn_measured = median("spawn + join, measuring", &|| spawn_join(5_000, Config::measuring_stack_use()))?;
    let fresh = Config { max_free_stacks: 0, ..Config::default() };
    let spawn_fresh = median("spawn + join, fresh stacks", &|| spawn_join(300, fresh))?;
    // Pinned to one CPU: unpinned, a new OS thread sometimes starts on another
    // CPU and the number jumps between runs (see ch01's bench).
    let os_hand_over = median("OS hand-over", &|| threads::ping_pong(2_000, true)).context("ch01 ping-pong")?;
    let os_spawn = median("OS spawn + join", &|| threads::on_one_cpu(|| threads::spawn_join(300, STACK)))
        .context("ch01 spawn+join")?;
    step(&format!("memory of {GREEN_PARKED} parked green threads"));
    let memory = parked_memory(GREEN_PARKED, teaching)?;
    step(&format!("memory of {OS_PARKED} parked OS threads"));
    let os_memory = threads::memory_per_parked_thread(OS_PARKED, STACK).context("ch01 memory per thread")?;
    let taking_back = TakingBack::measure(&mut step)?;
    drop(progress);

    let per_trip = |total: Duration| total.as_secs_f64() * 1e9 / f64::from(TRIPS);
    let nanos = |total: Duration| format!("{:.1} ns", per_trip(total));
    let ratio = |os: Duration, green: Duration| format!("{:.0}x", os.as_secs_f64() / green.as_secs_f64().max(1e-12));
    let rows: [(&str, Duration); 9] = [
        ("yield round trip", round_trip),
        ("yield round trip, naive switch (ends in ret)", round_trip_naive),
        ("bare switch round trip", bare),
        ("bare switch round trip, naive", bare_naive),
        ("bare switch round trip, not saving MXCSR / x87 control", bare_no_fp),
        ("yield round trip, inline switch", fast),
        ("yield round trip, inline switch saving MXCSR / x87 control", fast_float),
        ("bare inline switch round trip", bare_inline),
        ("bare inline switch round trip, saving MXCSR / x87 control", bare_inline_float),
    ];
    if json {
        let mut figures = Figures::new("ch02");
        for (metric, total) in rows {
            figures.number(metric, per_trip(total), "ns");
        }
        figures
            .time("OS thread switch there and back (2 hand-overs, same CPU)", os_hand_over * 2)
            .time("spawn + join, empty (stack from the free list)", spawn_recycled)
            .time("spawn + join, inline switch", spawn_inline)
            .time("spawn + join, measuring stack use", spawn_measured)
            .time("spawn + join, fresh mmap for every stack", spawn_fresh)
            .time("OS thread spawn + join", os_spawn)
            .bytes("memory reserved (virtual) per green thread", memory.0)
            .bytes("memory resident per green thread", memory.1)
            .bytes("memory reserved (virtual) per OS thread", os_memory.virtual_per_thread)
            .bytes("memory resident per OS thread", os_memory.resident_per_thread);
        taking_back.add_figures(&mut figures);
        print!("{}", figures.to_json_lines());
        return Ok(());
    }

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
        .row(&["going faster: inline switch, yield round trip", &nanos(fast), "", ""])
        .row(&["  same, saving MXCSR / x87 control", &nanos(fast_float), "", ""])
        .row(&[
            "  bare inline switch: without / with control words",
            &format!("{} / {}", nanos(bare_inline), nanos(bare_inline_float)),
            "",
            "",
        ])
        .row(&[
            "spawn + join, empty (stack from the free list)",
            &duration(spawn_recycled),
            &duration(os_spawn),
            &ratio(os_spawn, spawn_recycled),
        ])
        .row(&["  same, inline switch", &duration(spawn_inline), "", ""])
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
    println!();
    taking_back.print();
    Ok(())
}

/// Steps of [`TakingBack::measure`] that run `RUNS` times.
const PREEMPT_STEPS: usize = 10;
/// The quanta the preemption rows use.
const QUANTA: [Duration; 2] = [Duration::from_millis(1), Duration::from_micros(100)];
/// Rounds of `mix` in the checkpoint rows, per run.
const CHECKPOINT_ROUNDS: u64 = 20_000_000;
/// Elements summed in the checkpoint rows, per run.
const CHECKPOINT_ELEMENTS: u64 = 100_000_000;
/// Rounds of `mix` per fiber in the compute rows.
const COMPUTE_ROUNDS: u64 = 10_000_000;
/// Time slices of two spinning OS threads to measure.
const OS_SLICES: usize = 100;

/// The rows of "taking the CPU back".
struct TakingBack {
    /// The checkpoint loops' times (the median run, by the time of the
    /// loop with a checkpoint in every round of mix).
    checkpoint: CheckpointCost,
    /// Latencies of forced switches, every run's samples together: what,
    /// which quantum, the samples sorted.
    latencies: Vec<(String, Duration, Vec<Duration>)>,
    /// Three fibers' compute loop: what, its time (median).
    compute: Vec<(String, Duration)>,
    /// Two spinning OS threads on one CPU: how long each kept it, sorted.
    os_slices: Vec<Duration>,
}

impl TakingBack {
    fn measure(step: &mut dyn FnMut(&str)) -> anyhow::Result<TakingBack> {
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            step("loops with and without checkpoint()");
            runs.push(checkpoint_cost(CHECKPOINT_ROUNDS, CHECKPOINT_ELEMENTS, QUANTA[0])?);
        }
        // Each figure's own median: the five loops of a run share its noise
        // less than one might think (they run one after the other).
        let median_by = |figure: fn(&CheckpointCost) -> Duration| {
            let mut times: Vec<Duration> = runs.iter().map(figure).collect();
            times.sort();
            times[times.len() / 2]
        };
        let checkpoint = CheckpointCost {
            mix: median_by(|c| c.mix),
            mix_checked: median_by(|c| c.mix_checked),
            sum: median_by(|c| c.sum),
            sum_checked_each: median_by(|c| c.sum_checked_each),
            sum_checked_per_chunk: median_by(|c| c.sum_checked_per_chunk),
        };
        let mut latencies = Vec::new();
        let mut pooled = |what: &str, preempt: Preempt, fibers: usize| -> io::Result<()> {
            let quantum = preempt.quantum().unwrap_or_default();
            let switches = (Duration::from_millis(100).as_nanos() / quantum.as_nanos()).max(1) as u64;
            let mut all = Vec::new();
            for _ in 0..RUNS {
                step(&format!("{what}, {} quantum", duration(quantum)));
                all.extend(preemption_latencies(preempt, fibers, switches)?);
            }
            all.sort();
            latencies.push((what.to_string(), quantum, all));
            Ok(())
        };
        let [long, short] = QUANTA;
        pooled("1 fiber at checkpoints: the signal alone", Preempt::Checkpoints { quantum: long }, 1)?;
        for quantum in QUANTA {
            pooled("3 fibers, at checkpoints", Preempt::Checkpoints { quantum }, 3)?;
            pooled("3 fibers, asynchronously", Preempt::Asynchronous { quantum }, 3)?;
        }
        let mut compute = Vec::new();
        let rows: [(&str, Preempt, bool); 4] = [
            ("no preemption (one after the other)", Preempt::Off, false),
            ("a checkpoint every round", Preempt::Checkpoints { quantum: long }, true),
            ("asynchronous", Preempt::Asynchronous { quantum: long }, false),
            ("asynchronous", Preempt::Asynchronous { quantum: short }, false),
        ];
        for (what, preempt, checkpoints) in rows {
            let time = median_of(RUNS, || {
                step(&format!("3 fibers computing: {what}"));
                compute_three(preempt, checkpoints, COMPUTE_ROUNDS)
            })?;
            let what = match preempt.quantum() {
                Some(quantum) => format!("{what}, {} quantum", duration(quantum)),
                None => what.to_string(),
            };
            compute.push((what, time));
        }
        step(&format!("{OS_SLICES} time slices of two OS threads on one CPU"));
        let mut os_slices = os_time_slices(OS_SLICES, Duration::from_secs(10)).context("two spinning OS threads")?;
        os_slices.sort();
        Ok(TakingBack { checkpoint, latencies, compute, os_slices })
    }

    /// The sample at quantile `q` (0 to 1) of sorted `samples`.
    fn quantile(samples: &[Duration], q: f64) -> Duration {
        let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(at).copied().unwrap_or_default()
    }

    fn print(&self) {
        let mut table = Table::new(&["taking the CPU back", "median", "p99 (spread)"]);
        let c = &self.checkpoint;
        let per = |total: Duration, count: u64| format!("{:.2} ns", total.as_secs_f64() * 1e9 / count as f64);
        let (rounds, elements) = (CHECKPOINT_ROUNDS, CHECKPOINT_ELEMENTS);
        table
            .row(&["checkpoint() in a loop, one fiber, 1 ms quantum:", "", ""])
            .row(&["  a round of mix, without checkpoint()", &per(c.mix, rounds), ""])
            .row(&["  a round of mix, with a checkpoint() every round", &per(c.mix_checked, rounds), ""])
            .row(&["  summing u64s, per element, without checkpoint() (vectorised)", &per(c.sum, elements), ""])
            .row(&["  the same, with a checkpoint() after every element", &per(c.sum_checked_each, elements), ""])
            .row(&[
                &format!("  the same, with a checkpoint() after every {SUM_CHUNK} elements"),
                &per(c.sum_checked_per_chunk, elements),
                "",
            ]);
        table.row(&["a forced switch, how late after the quantum ended:", "", ""]);
        for (what, quantum, samples) in &self.latencies {
            let median = duration(Self::quantile(samples, 0.5));
            let p99 = duration(Self::quantile(samples, 0.99));
            table.row(&[
                &format!("  {what}, {} quantum ({} switches)", duration(*quantum), samples.len()),
                &median,
                &p99,
            ]);
        }
        table.row(&[&format!("3 fibers, {COMPUTE_ROUNDS} rounds of mix each:"), "", ""]);
        let baseline = self.compute.first().map_or(Duration::ZERO, |(_, time)| *time);
        for (what, time) in &self.compute {
            let share = 100.0 * time.as_secs_f64() / baseline.as_secs_f64().max(1e-12);
            table.row(&[&format!("  {what}"), &duration(*time), &format!("{share:.1} %")]);
        }
        let slices = &self.os_slices;
        let spread = format!("{} to {}", duration(Self::quantile(slices, 0.1)), duration(Self::quantile(slices, 0.9)));
        table.row(&[
            &format!("two OS threads spinning on one CPU: the kernel's time slice ({} slices)", slices.len()),
            &duration(Self::quantile(slices, 0.5)),
            &format!("{spread} (p10 to p90)"),
        ]);
        print!("{table}");
        let legend = format!(
            "Latency: from the tick's due time (the timer is armed at absolute times) to the switch, every \
             forced switch of {RUNS} runs; it includes the kernel's delivery of the signal, which the first row \
             measures with no other fiber to switch to. Compute: medians of {RUNS} runs, the last column against \
             the first row. OS threads: pinned to one CPU, each reading the clock in a loop; a turn is an \
             unbroken stretch of reads (no gap over {} µs).",
            SWITCHED_OUT.as_micros()
        );
        print!("{}", report::wrap(&legend, 100, ""));
    }

    fn add_figures(&self, figures: &mut Figures) {
        let c = &self.checkpoint;
        let per = |total: Duration, count: u64| total.as_secs_f64() * 1e9 / count as f64;
        let (rounds, elements) = (CHECKPOINT_ROUNDS, CHECKPOINT_ELEMENTS);
        figures
            .number("a round of mix, without checkpoint()", per(c.mix, rounds), "ns")
            .number("a round of mix, with a checkpoint() every round", per(c.mix_checked, rounds), "ns")
            .number("summing u64s, per element, without checkpoint()", per(c.sum, elements), "ns")
            .number("summing u64s, per element, checkpoint() after each", per(c.sum_checked_each, elements), "ns")
            .number(
                &format!("summing u64s, per element, checkpoint() every {SUM_CHUNK}"),
                per(c.sum_checked_per_chunk, elements),
                "ns",
            );
        for (what, quantum, samples) in &self.latencies {
            let metric = format!("forced switch latency, {what}, {} quantum", duration(*quantum));
            figures
                .time(&format!("{metric}: median"), Self::quantile(samples, 0.5))
                .time(&format!("{metric}: p99"), Self::quantile(samples, 0.99));
        }
        for (what, time) in &self.compute {
            figures.time(&format!("3 fibers computing, {what}"), *time);
        }
        figures
            .time("two spinning OS threads on one CPU: time slice, median", Self::quantile(&self.os_slices, 0.5))
            .time("two spinning OS threads on one CPU: time slice, p10", Self::quantile(&self.os_slices, 0.1))
            .time("two spinning OS threads on one CPU: time slice, p90", Self::quantile(&self.os_slices, 0.9));
    }
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

    /// The two saved stack pointers of `inline_round_trip`.
    struct InlinePair {
        main: *mut u8,
        partner: *mut u8,
    }

    /// The partner context of `inline_round_trip`: switch back to main with
    /// the inline switch, forever. `FLOAT` picks the one saving the control words.
    extern "sysv64" fn inline_partner<const FLOAT: bool>(arg: *mut u8) -> ! {
        let pair = arg.cast::<InlinePair>();
        loop {
            // SAFETY: as in `partner`; main was suspended by the same switch.
            unsafe {
                if FLOAT {
                    arch::inline::switch_saving_float_control(&raw mut (*pair).partner, (*pair).main)
                } else {
                    arch::inline::switch(&raw mut (*pair).partner, (*pair).main)
                }
            }
        }
    }

    /// Total time of `n` round trips main -> partner -> main through the
    /// inline switch (no runtime, no ring), with or without the control words.
    pub fn inline_round_trip<const FLOAT: bool>(n: u32) -> io::Result<Duration> {
        let stack = Stack::new(16 * 1024)?;
        let mut pair = Box::new(InlinePair { main: std::ptr::null_mut(), partner: std::ptr::null_mut() });
        let pair_ptr: *mut InlinePair = &mut *pair;
        // SAFETY: the stack is fresh and its top 16-byte aligned; the partner
        // never returns; the frame matches the switch both sides use.
        unsafe {
            (*pair_ptr).partner = arch::inline::init_stack(stack.top(), inline_partner::<FLOAT>, pair_ptr.cast(), FLOAT)
        };
        let start = Instant::now();
        for _ in 0..n {
            // SAFETY: the partner's stack pointer is fresh or saved by its
            // last (inline) switch, and its stack is mapped.
            unsafe {
                if FLOAT {
                    arch::inline::switch_saving_float_control(&raw mut (*pair_ptr).main, (*pair_ptr).partner)
                } else {
                    arch::inline::switch(&raw mut (*pair_ptr).main, (*pair_ptr).partner)
                }
            }
        }
        let elapsed = start.elapsed();
        // As in `round_trip`: the partner owns nothing on its stack.
        drop(stack);
        drop(pair);
        Ok(elapsed)
    }
}
