//! The check of exercise 2.4: the count is right; on a runtime that
//! preempts at checkpoints, a second fiber gets turns while it runs, one
//! per forced switch (not one per number, as with `yield_now`); and at
//! each of those turns the progress it reads is whole.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ch02_exercises::share_the_cpu::{Progress, count_primes};
use ch02_green_threads::preempt::ticks;
use ch02_green_threads::{Config, Preempt, run, spawn, stats, yield_now};
use exercise_harness::{Verdict, ensure};

/// The runtime's quantum: short, so that a count of a fraction of a second
/// sees many ticks.
const QUANTUM: Duration = Duration::from_micros(500);

/// Counting below this many numbers first; doubled (a few times at most)
/// while the count is over before the timer has ticked [`TICKS_NEEDED`]
/// times, as a fast solution on a fast machine may be.
const FIRST_BELOW: u64 = 200_000;
/// Ticks during the count that make it long enough to judge.
const TICKS_NEEDED: u64 = 20;

pub fn check() -> Verdict {
    // Outside a runtime, checkpoint() never yields: a plain count.
    for (below, primes) in [(0, 0), (2, 0), (3, 1), (100, 25), (1000, 168)] {
        let got = count_primes(below, &Progress::default());
        ensure!(got == primes, "count_primes({below}) returned {got}; there are {primes} primes below {below}");
    }
    let mut below = FIRST_BELOW;
    for _ in 0..5 {
        let primes_below = primes_below_each(below);
        let watched = watch(below, &primes_below)?;
        ensure!(
            watched.count == primes_below[below as usize],
            "count_primes({below}) returned {} on a preempting runtime; there are {} primes below {below}",
            watched.count,
            primes_below[below as usize]
        );
        if watched.ticks < TICKS_NEEDED {
            below *= 2; // over too soon to tell: count further
            continue;
        }
        ensure!(
            watched.turns > 0,
            "while count_primes({below}) ran, the timer said {} times that its time was up, and the other fiber \
             never had a turn: the loop must call checkpoint(), which yields when the quantum is over",
            watched.ticks
        );
        ensure!(
            watched.turns <= watched.forced + 1,
            "while count_primes({below}) ran, the other fiber had {} turns, but the timer made it yield only {} \
             times: it yields on its own far more often. checkpoint() yields only when the quantum is over; \
             yield_now() in the loop gives the CPU away at every number, with a switch each time",
            watched.turns,
            watched.forced
        );
        ensure!(
            watched.torn == 0,
            "{} of the {} times the other fiber ran, it found `found` and `checked` disagreeing (e.g. {}): the \
             loop yielded between updating one and the other. Update both, then call checkpoint(): the other \
             fibers run only where you yield",
            watched.torn,
            watched.turns,
            watched.example
        );
        return Ok(());
    }
    Err(format!(
        "even count_primes({below}) was over before the timer ticked {TICKS_NEEDED} times ({} each): it is fast \
         enough that this check cannot see it share the CPU",
        QUANTUM.as_micros()
    ))
}

/// What the other fiber saw while the count ran.
struct Watched {
    /// What `count_primes` returned.
    count: u64,
    /// Ticks while it ran.
    ticks: u64,
    /// Forced switches at checkpoints while it ran.
    forced: u64,
    /// Turns the other fiber had while it ran.
    turns: u64,
    /// Turns at which the progress did not add up.
    torn: u64,
    /// The first such progress, described.
    example: String,
}

/// Runs the count on a runtime that preempts at checkpoints, beside a
/// fiber that checks the progress at each of its turns.
fn watch(below: u64, primes_below: &Rc<Vec<u64>>) -> Result<Watched, String> {
    run(Config::preempting(Preempt::Checkpoints { quantum: QUANTUM }), || {
        let progress = Rc::new(Progress::default());
        let counting = Rc::new(Cell::new(true));
        let (ticks_before, forced_before) = (ticks(), forced());
        let counter = {
            let (progress, counting) = (Rc::clone(&progress), Rc::clone(&counting));
            spawn(move || {
                let count = count_primes(below, &progress);
                counting.set(false);
                (count, ticks(), forced())
            })
        }
        .map_err(|e| format!("spawn failed: {e}"))?;
        let watcher = {
            let (progress, counting, primes_below) =
                (Rc::clone(&progress), Rc::clone(&counting), Rc::clone(primes_below));
            spawn(move || {
                let (mut turns, mut torn, mut example) = (0, 0, String::new());
                while counting.get() {
                    turns += 1;
                    let (checked, found) = (progress.checked.get(), progress.found.get());
                    let expected = primes_below.get(checked as usize).copied();
                    if expected != Some(found) {
                        torn += 1;
                        if example.is_empty() {
                            let expected = expected.map_or("?".to_string(), |n| n.to_string());
                            example =
                                format!("checked {checked}, found {found}, but {expected} primes are below {checked}");
                        }
                    }
                    yield_now();
                }
                (turns, torn, example)
            })
        }
        .map_err(|e| format!("spawn failed: {e}"))?;
        let (count, ticks_after, forced_after) = counter.join().map_err(|e| format!("count_primes failed: {e}"))?;
        let (turns, torn, example) = watcher.join().map_err(|e| format!("the watching fiber failed: {e}"))?;
        // The counter was spawned first, so it runs first: every turn of
        // the watcher comes after the counter gave the CPU away.
        Ok(Watched {
            count,
            ticks: ticks_after - ticks_before,
            forced: forced_after - forced_before,
            turns,
            torn,
            example,
        })
    })
    .map_err(|e| format!("the runtime failed: {e}"))?
}

/// Forced switches at checkpoints so far on this thread's runtime.
fn forced() -> u64 {
    stats().map_or(0, |stats| stats.preempted_at_checkpoints)
}

/// `result[k]` is the number of primes below `k`, for every `k` up to
/// `below` (a sieve of Eratosthenes: the check's own count, to compare).
fn primes_below_each(below: u64) -> Rc<Vec<u64>> {
    let n = below as usize;
    let mut composite = vec![false; n + 1];
    let mut counts = vec![0u64; n + 1];
    let mut found = 0;
    for k in 0..=n {
        counts[k] = found;
        if k >= 2 && !composite[k] {
            found += 1;
            let mut multiple = k * k;
            while multiple <= n {
                composite[multiple] = true;
                multiple += k;
            }
        }
    }
    Rc::new(counts)
}
