//! Finished fibers' stacks are reused, not mapped again: the number of
//! memory mappings of the process (lines of /proc/self/maps) does not grow
//! when fibers finish and new ones start.
//!
//! The only test in this file, so no other test of this crate runs in this
//! process at the same time and changes the mapping count.

use std::io;

use ch01_os_threads::measure::map_count;
use ch02_green_threads::{Config, run, spawn, stats, yield_now};

const WAVE: usize = 200;

/// Spawns `WAVE` fibers that each yield a few times, and joins them all.
fn wave() -> io::Result<()> {
    let fibers = (0..WAVE)
        .map(|_| {
            spawn(|| {
                for _ in 0..3 {
                    yield_now();
                }
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    for fiber in fibers {
        fiber.join().map_err(io::Error::other)?;
    }
    Ok(())
}

#[test]
fn finished_fibers_stacks_are_reused_and_mappings_do_not_grow() -> io::Result<()> {
    run(Config::default(), || -> io::Result<()> {
        wave()?; // the first wave maps WAVE stacks
        let after_first = map_count()?;
        let first = stats().expect("inside run");
        assert_eq!((first.stacks_mapped, first.stacks_free), (WAVE, WAVE));
        for _ in 0..3 {
            wave()?;
        }
        let after_more = map_count()?;
        let later = stats().expect("inside run");
        assert_eq!(later.stacks_mapped, WAVE, "no new stacks");
        assert_eq!(later.recycled_stacks, 3 * WAVE as u64, "every later spawn reused a stack");
        assert_eq!(after_more, after_first, "mappings grew from {after_first} to {after_more}");
        Ok(())
    })?
}
