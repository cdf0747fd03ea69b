//! Counting heap allocations, for the "allocations per spawn" figure: the
//! process's allocator is std's `System` allocator behind a switch that,
//! when on, counts every `alloc` call (from any thread).
//!
//! The switch is off while anything is timed: counting costs an atomic
//! add per allocation, which would slow the contenders that allocate more
//! by more. `bench-run spawns` times its run first, then counts a second,
//! smaller run ([`count_allocations`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// std's allocator, counting `alloc` calls while [`COUNTING`] is set.
pub struct CountingAllocator;

/// Whether allocations are being counted.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Allocations counted since the switch went on.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Counts one allocation, if counting. Relaxed: only the total matters,
/// read after the counted work has finished (its threads joined or its
/// tasks completed, which orders their adds before the read).
fn note() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only two
// atomics and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded; the caller keeps `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded, as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    // A reallocation grows or shrinks a block that was counted when it was
    // allocated: not a new allocation (a run queue that doubles now and
    // then is not a cost per task).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded: `ptr` came from `System`, the caller keeps the contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `work` with counting on; returns its output and how many
/// allocations were made meanwhile, by any thread of the process.
pub fn count_allocations<T>(work: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let output = work();
    COUNTING.store(false, Ordering::SeqCst);
    (output, ALLOCATIONS.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_allocations_made_while_on_and_only_those() {
        // Other tests run on other threads meanwhile, and their allocations
        // count too while the switch is on: hence "at least".
        let (boxes, counted) =
            count_allocations(|| (0..100u64).map(|i| Box::new(std::hint::black_box(i))).collect::<Vec<_>>());
        assert!(counted >= 101, "100 boxes and the vector's buffer, counted {counted}: {boxes:?}");
        // Off: nothing moves the count, whoever allocates.
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        let more: Vec<Box<u64>> = (0..100).map(|i| Box::new(std::hint::black_box(i))).collect();
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), after, "{more:?}");
    }
}
