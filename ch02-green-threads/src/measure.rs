//! What fibers cost, measured: a yield round trip, a spawn and join, the
//! memory of a parked fiber. The chapter's `bench` prints these, and the
//! workspace's `bench/` showdown sets them beside other runtimes', so the
//! numbers everywhere come from this one piece of code.
//!
//! Every function starts its own runtime with the [`Config`] it is given,
//! so the same measurement runs with either kind of switch.

use std::io;
use std::time::{Duration, Instant};

use ch01_os_threads::measure::ProcStatus;

use crate::{Config, Switch, run, spawn, yield_now, yield_now_naive};

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
