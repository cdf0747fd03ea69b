//! Preemptible leaf functions: pure computation in the `preempt_text`
//! link section, where a runtime with [`Preempt::Asynchronous`] may switch
//! a fiber at any instruction (see [`crate::preempt`] for the rules).
//!
//! The demo's spinner, and the compute kernel of the tests and the bench.
//! Each is `#[inline(never)]`, so that its code stays in the section
//! rather than being copied into a caller outside it, and calls nothing in
//! its loop but the `#[inline(always)]` steps below (inlined even in a
//! debug build), so that a tick finds it inside the section nearly every
//! time. What they read from other fibers they read through an atomic.
//!
//! [`Preempt::Asynchronous`]: crate::Preempt::Asynchronous

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::preempt::checkpoint;

// ANCHOR: mix
/// `rounds` rounds of integer and floating-point mixing from `seed`: a
/// result that depends on every bit of every register the loop keeps, so
/// a preemption that lost or swapped one (an integer or an `xmm`
/// register, or the rounding mode) would change it.
#[unsafe(link_section = "preempt_text")] // pure computation: safe to interrupt anywhere
#[inline(never)]
pub fn mix(seed: u64, rounds: u64) -> u64 {
    let (mut x, mut f) = (seed, seed as f64);
    let mut done = 0;
    while done < rounds {
        (x, f) = mix_step(x, f);
        done += 1;
    }
    x ^ f.to_bits()
}
// ANCHOR_END: mix

/// [`mix`], with a [`checkpoint`] in every round: the loop of the first
/// step, which shares the CPU without asynchronous preemption. (In the
/// section too, which changes nothing for checkpoints: `checkpoint` may be
/// called from the section, its slow path runs outside it.)
#[unsafe(link_section = "preempt_text")]
#[inline(never)]
pub fn mix_with_checkpoints(seed: u64, rounds: u64) -> u64 {
    let (mut x, mut f) = (seed, seed as f64);
    let mut done = 0;
    while done < rounds {
        (x, f) = mix_step(x, f);
        done += 1;
        checkpoint();
    }
    x ^ f.to_bits()
}

/// One round of [`mix`]: a 64-bit finaliser (xor-shift, multiply) and a
/// floating-point recurrence fed by it, whose result depends on the
/// rounding of every step.
#[inline(always)]
fn mix_step(x: u64, f: f64) -> (u64, f64) {
    let mut x = x ^ (x >> 33);
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 29;
    let f = f * 0.999_999_9 + (x >> 11) as f64 / 3.0;
    (x, f)
}

// ANCHOR: spin
/// What [`spin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spun {
    /// Rounds spun.
    pub rounds: u64,
    /// Whether it stopped because `stop` was set (otherwise: the bound).
    pub stopped: bool,
    /// What the rounds computed (so the compiler cannot drop them).
    pub value: u64,
}

/// Spins, never yielding, until another fiber sets `stop` or `max_rounds`
/// rounds are done, and counts the rounds in `progress` as it goes.
///
/// `stop` and `progress` are atomics: with asynchronous preemption, the
/// other fibers run between two instructions of this loop, which the
/// compiler cannot know. With a plain `bool` it may read `stop` once and
/// keep it in a register, and never see it change.
#[unsafe(link_section = "preempt_text")] // pure computation and atomics: safe to interrupt anywhere
#[inline(never)]
pub fn spin(stop: &AtomicBool, progress: &AtomicU64, max_rounds: u64) -> Spun {
    let (mut value, mut rounds) = (1u64, 0);
    let stopped = loop {
        if stop.load(Ordering::Relaxed) {
            break true;
        }
        if rounds == max_rounds {
            break false;
        }
        value = spin_round(value);
        rounds += 1;
        progress.store(rounds, Ordering::Relaxed);
    };
    Spun { rounds, stopped, value }
}
// ANCHOR_END: spin

/// [`spin`], calling [`checkpoint`] once a round: the same loop for a
/// runtime that preempts at checkpoints only.
#[inline(never)]
pub fn spin_with_checkpoints(stop: &AtomicBool, progress: &AtomicU64, max_rounds: u64) -> Spun {
    let (mut value, mut rounds) = (1u64, 0);
    let stopped = loop {
        if stop.load(Ordering::Relaxed) {
            break true;
        }
        if rounds == max_rounds {
            break false;
        }
        value = spin_round(value);
        rounds += 1;
        progress.store(rounds, Ordering::Relaxed);
        checkpoint();
    };
    Spun { rounds, stopped, value }
}

/// One round of [`spin`]: 64 steps of xor-shift and multiply, enough work
/// that the loop's atomic load (a call, in a debug build, to a function
/// outside the section) is a small part of it. Not multiply-and-add alone:
/// 64 steps of `x * a + c` are `x * a^64 + c'`, which the optimiser works
/// out and does in one step, and the spinner would finish its bound before
/// the first tick.
#[inline(always)]
fn spin_round(mut value: u64) -> u64 {
    let mut step = 0;
    while step < 64 {
        value ^= value >> 29;
        value = value.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        step += 1;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_with_and_without_checkpoints_computes_the_same() {
        assert_eq!(mix(7, 1000), mix_with_checkpoints(7, 1000));
        assert_ne!(mix(7, 1000), mix(8, 1000));
    }

    #[test]
    fn spin_stops_at_its_bound_or_when_told() {
        let (stop, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let bounded = spin(&stop, &progress, 10);
        assert_eq!((bounded.rounds, bounded.stopped, progress.load(Ordering::Relaxed)), (10, false, 10));
        stop.store(true, Ordering::Relaxed);
        let told = spin_with_checkpoints(&stop, &progress, 10);
        assert_eq!((told.rounds, told.stopped), (0, true));
    }
}
