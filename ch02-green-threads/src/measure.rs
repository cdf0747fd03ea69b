//! What fibers cost, measured: a yield round trip, a spawn and join, the
//! memory of a parked fiber, and what taking the CPU back costs (a
//! checkpoint, how late a forced switch comes, what preemption does to a
//! compute loop, and the OS's own time slice to compare). The chapter's
//! `bench` prints these, and the workspace's `bench/` showdown sets them
//! beside other runtimes', so the numbers everywhere come from this one
//! piece of code.
//!
//! Every function starts its own runtime with the [`Config`] it is given,
//! so the same measurement runs with either kind of switch.

use std::hint::black_box;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ch01_os_threads::measure::ProcStatus;
use ch01_os_threads::sys;

use crate::preemptible::{mix, mix_with_checkpoints, spin, spin_with_checkpoints};
use crate::{Config, Preempt, Switch, checkpoint, preempt, run, spawn, stats, yield_now, yield_now_naive};

// ANCHOR: bench_round_trip
/// Total time of `n` round trips main -> fiber -> main, on a runtime with
/// `config`. `NAIVE` yields through the switch that ends in `ret` (it needs
/// `Switch::Call`, whose frames it shares). Each loop calls the (inlined)
/// yield from its own code, as real fibers do.
pub fn yield_round_trips<const NAIVE: bool>(config: Config, n: u32) -> io::Result<Duration> {
    if NAIVE && config.switch != Switch::Call {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the naive switch needs Switch::Call"));
    }
    // The yields are written out in each loop, not called through a shared
    // closure: if the compiler chose not to inline that closure, every
    // resume would return out of it with a `ret` the CPU mispredicts (see
    // "Why `switch` ends in `jmp`" in `arch`), and the bench would measure
    // that instead of the switch.
    run(config, || {
        let partner = spawn(move || {
            for _ in 0..n {
                if NAIVE { yield_now_naive() } else { yield_now() }
            }
        })?;
        let start = Instant::now();
        for _ in 0..n {
            if NAIVE { yield_now_naive() } else { yield_now() }
        }
        let elapsed = start.elapsed();
        partner.join().map_err(io::Error::other)?;
        Ok(elapsed)
    })?
}
// ANCHOR_END: bench_round_trip

/// Average time to spawn an empty fiber and join it, over `n` of them
/// (after one, so that the free list has a stack to hand out).
pub fn spawn_join(n: u32, config: Config) -> io::Result<Duration> {
    run(config, || {
        spawn(|| ())?.join().map_err(io::Error::other)?; // warm up: the first stack is always fresh
        let start = Instant::now();
        for _ in 0..n {
            spawn(|| ())?.join().map_err(io::Error::other)?;
        }
        Ok(start.elapsed() / n.max(1))
    })?
}

/// Virtual and resident bytes per fiber with `n` fibers parked at once
/// (each has run up to its first yield), from `/proc/self/status`.
pub fn parked_memory(n: usize, config: Config) -> io::Result<(u64, u64)> {
    let before = ProcStatus::read()?;
    let during = run(config, || {
        let mut fibers = Vec::with_capacity(n);
        for _ in 0..n {
            fibers.push(spawn(yield_now)?);
        }
        yield_now(); // one round: every fiber has run up to its yield, all n stacks in use
        let during = ProcStatus::read()?;
        for fiber in fibers {
            fiber.join().map_err(io::Error::other)?;
        }
        Ok::<_, io::Error>(during)
    })??;
    let per = |after: u64, before: u64| after.saturating_sub(before) / n.max(1) as u64;
    Ok((per(during.virtual_bytes, before.virtual_bytes), per(during.resident_bytes, before.resident_bytes)))
}

// ANCHOR: bench_checkpoint
/// What a [`checkpoint`] costs in a loop, as total times (divide by the
/// counts yourself: a `Duration` divided by a count is rounded down to
/// whole nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCost {
    /// `rounds` rounds of [`mix`], which the compiler cannot restructure.
    pub mix: Duration,
    /// The same with a checkpoint in every round ([`mix_with_checkpoints`]).
    pub mix_checked: Duration,
    /// Summing `elements` `u64`s, a loop the compiler unrolls and vectorises.
    pub sum: Duration,
    /// The same with a checkpoint after every element.
    pub sum_checked_each: Duration,
    /// The same with a checkpoint after every [`SUM_CHUNK`] elements.
    pub sum_checked_per_chunk: Duration,
}

/// How many elements `checkpoint_cost`'s chunked sum adds between checkpoints.
pub const SUM_CHUNK: usize = 1024;

/// Measures [`CheckpointCost`]: `rounds` rounds of `mix`, and `elements`
/// elements summed (a 64 KiB array, again and again), on a runtime that
/// preempts at checkpoints every `quantum` with the main fiber alone (the
/// timer ticks, and the rare forced "switch" finds nobody else to run).
pub fn checkpoint_cost(rounds: u64, elements: u64, quantum: Duration) -> io::Result<CheckpointCost> {
    let values: Vec<u64> = (0..8192).collect();
    let passes = elements / values.len() as u64;
    let time = |f: &dyn Fn() -> u64| {
        let start = Instant::now();
        black_box(f());
        start.elapsed()
    };
    // `black_box` on every pass: the compiler must not notice that each
    // pass sums the same values and keep the first result.
    let values = &values;
    let summed = |sum: fn(&[u64]) -> u64| move || (0..passes).fold(0u64, |total, _| total ^ sum(black_box(values)));
    run(Config::preempting(Preempt::Checkpoints { quantum }), || CheckpointCost {
        mix: time(&|| mix(black_box(1), rounds)),
        mix_checked: time(&|| mix_with_checkpoints(black_box(1), rounds)),
        sum: time(&summed(sum)),
        sum_checked_each: time(&summed(sum_checking_each)),
        sum_checked_per_chunk: time(&summed(sum_checking_per_chunk)),
    })
}

/// The sum of `values` (wrapping), in [`SUM_CHUNK`]-element chunks like
/// [`sum_checking_per_chunk`] but without its checkpoint: the same inner
/// loop, so that the two differ by the checkpoint alone. (A tight loop's
/// speed also depends on where it lands in the binary, relative to the
/// CPU's 64-byte fetch blocks: the same code can differ by a factor of two
/// between two builds.)
#[inline(never)]
fn sum(values: &[u64]) -> u64 {
    let mut total = 0u64;
    for chunk in values.chunks(SUM_CHUNK) {
        total = chunk.iter().fold(total, |total, &value| total.wrapping_add(value));
    }
    total
}

/// [`sum`] with a checkpoint after every element: the branch to the
/// checkpoint's cold half is a possible call in every iteration, which the
/// compiler cannot unroll or vectorise across.
#[inline(never)]
fn sum_checking_each(values: &[u64]) -> u64 {
    let mut total = 0u64;
    for &value in values {
        total = total.wrapping_add(value);
        checkpoint();
    }
    total
}

/// [`sum`] with a checkpoint after every [`SUM_CHUNK`] elements: the inner
/// loop is as fast as [`sum`]'s.
#[inline(never)]
fn sum_checking_per_chunk(values: &[u64]) -> u64 {
    let mut total = 0u64;
    for chunk in values.chunks(SUM_CHUNK) {
        total = chunk.iter().fold(total, |total, &value| total.wrapping_add(value));
        checkpoint();
    }
    total
}
// ANCHOR_END: bench_checkpoint

// ANCHOR: bench_latency
/// How late forced switches come after the quantum ends: `fibers` fibers
/// spin, never yielding (at checkpoints, or in the preemptible section for
/// [`Preempt::Asynchronous`]), until `switches` forced switches have
/// happened; returns the runtime's latencies (from each tick's due time to
/// the switch). One fiber alone measures the tick's signal and its
/// handling, with nobody to switch to.
pub fn preemption_latencies(preempt: Preempt, fibers: usize, switches: u64) -> io::Result<Vec<Duration>> {
    let asynchronous = matches!(preempt, Preempt::Asynchronous { .. });
    if preempt == Preempt::Off || (asynchronous && fibers < 2) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "needs preemption, and two fibers or more for asynchronous preemption (the main fiber is never preempted \
             asynchronously)",
        ));
    }
    run(Config::preempting(preempt), || {
        let stop = Rc::new(AtomicBool::new(false));
        let forced = || stats().map_or(0, |s| s.preempted_at_checkpoints + s.preempted_asynchronously);
        if fibers == 1 {
            // The main fiber spins itself, checking the count at its checkpoints.
            let mut x = 1u64;
            while forced() < switches {
                for _ in 0..64 {
                    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
                    checkpoint();
                }
            }
            black_box(x);
            return Ok(preempt::latencies().unwrap_or_default());
        }
        let mut spinners = Vec::new();
        for _ in 0..fibers {
            let stop = Rc::clone(&stop);
            spinners.push(spawn(move || {
                let progress = AtomicU64::new(0);
                match asynchronous {
                    true => spin(&stop, &progress, u64::MAX),
                    false => spin_with_checkpoints(&stop, &progress, u64::MAX),
                }
            })?);
        }
        // The main fiber gets a turn after each lap of the ring: count there.
        while forced() < switches {
            yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            spinner.join().map_err(io::Error::other)?;
        }
        Ok(preempt::latencies().unwrap_or_default())
    })?
}
// ANCHOR_END: bench_latency

/// How long three fibers take to do `rounds` rounds of [`mix`] each, on a
/// runtime that preempts as `preempt` says: one after the other without
/// preemption, taking turns with it. `checkpoints` runs
/// [`mix_with_checkpoints`] instead (a checkpoint in every round).
pub fn compute_three(preempt: Preempt, checkpoints: bool, rounds: u64) -> io::Result<Duration> {
    run(Config::preempting(preempt), || {
        let start = Instant::now();
        let fibers = (1..=3u64)
            .map(|seed| {
                spawn(move || match checkpoints {
                    true => mix_with_checkpoints(seed, rounds),
                    false => mix(seed, rounds),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        for fiber in fibers {
            black_box(fiber.join().map_err(io::Error::other)?);
        }
        Ok(start.elapsed())
    })?
}

// ANCHOR: bench_os_slice
/// A thread that reads the clock in a loop sees a gap longer than this
/// only when it was not running: the kernel gave the CPU to someone else.
pub const SWITCHED_OUT: Duration = Duration::from_micros(50);

/// How long an OS thread runs before the kernel lets another one have the
/// CPU: two threads spin on the same CPU, each reading the clock in a
/// loop; an unbroken stretch of reads (no gap over [`SWITCHED_OUT`]) is one
/// turn. Measured by each thread itself, so a third task that gets the CPU
/// in between does not lengthen the turns. Returns `slices` turns (or what
/// there was after `limit`); the first turn of each thread is left out
/// (it did not start at a switch).
pub fn os_time_slices(slices: usize, limit: Duration) -> io::Result<Vec<Duration>> {
    let cpu = sys::allowed_cpus()?.first().copied().ok_or_else(|| io::Error::other("no CPU to run on"))?;
    let turns = AtomicUsize::new(0);
    let deadline = Instant::now() + limit;
    let spin = || -> io::Result<Vec<Duration>> {
        let _pin = sys::pin_to_cpu(cpu)?;
        let mut mine = Vec::with_capacity(slices);
        let (mut started, mut last) = (None, Instant::now());
        while turns.load(Ordering::Relaxed) < slices && last < deadline {
            let now = Instant::now();
            if now - last > SWITCHED_OUT {
                // We were switched out after `last`, and are back since `now`.
                if let Some(start) = started {
                    mine.push(last - start);
                    turns.fetch_add(1, Ordering::Relaxed);
                }
                started = Some(now);
            }
            last = now;
        }
        Ok(mine)
    };
    let (one, two) = std::thread::scope(|scope| {
        let one = scope.spawn(spin);
        let two = scope.spawn(spin);
        (one.join(), two.join())
    });
    let joined = |result: std::thread::Result<io::Result<Vec<Duration>>>| {
        result.map_err(|_| io::Error::other("a spinning thread panicked"))?
    };
    let mut all = joined(one)?;
    all.extend(joined(two)?);
    Ok(all)
}
// ANCHOR_END: bench_os_slice
