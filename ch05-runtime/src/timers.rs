//! The reactor's timer table: a min-heap of deadlines, and a slab of wakers.
//!
//! The reactor needs the earliest deadline (its `epoll_wait` timeout) and,
//! after waking up, every timer that is due: a binary heap gives both in
//! `O(log n)`. But a sleeping future must also find *its* entry again, to
//! replace its waker (it was polled from another task) or to remove it (it
//! was dropped early, e.g. by `timeout`), and a heap cannot find anything
//! but its smallest element. So the wakers live in a slab, where a timer's
//! key (index and generation) finds them at once, and the heap holds only
//! `(deadline, index, generation)`:
//!
//! ```text
//!   heap (earliest first)                 slab of wakers
//!   (12:00:00.050, 3, gen 1) ──────────▶  [3] gen 1  waker of task 7
//!   (12:00:00.100, 0, gen 4) ──────────▶  [0] gen 4  waker of task 2
//!   (12:00:00.200, 3, gen 0)   stale: [3] is gen 1 now, skipped when popped
//! ```
//!
//! Removing a timer frees its slab slot at once (and drops its waker, so a
//! finished task is not kept alive), but leaves its heap entry behind: the
//! entry is skipped when it reaches the top, because the slot's generation
//! moved on. That is *lazy deletion*: 24 bytes per cancelled timer until its
//! deadline passes, for `O(1)` cancellation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;
use std::task::Waker;
use std::time::Instant;

/// A timer's key: its slab slot and that slot's generation when it was added.
///
/// Eight bytes, and `Option<TimerKey>` too (a generation is never 0): it is
/// part of every sleeping future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    /// The slot in the slab.
    index: u32,
    /// The slot's generation: a slot reused for a later timer gets a new one.
    generation: NonZeroU32,
}

/// One slot of the slab.
#[derive(Debug, Default)]
struct Slot {
    /// Bumped every time the slot is taken, so old keys stop matching (0
    /// only before its first use).
    generation: u32,
    /// The sleeping task's waker; `None` while the slot is free.
    waker: Option<Waker>,
    /// While free: the next free slot (a list threaded through the free slots).
    next_free: u32,
}

/// Pending timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// `(deadline, index, generation)`, earliest on top; may hold stale entries.
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// The wakers, by slot.
    slots: Vec<Slot>,
    /// The first free slot (`slots.len()` if none is free).
    free: u32,
    /// How many timers are pending (slots in use).
    pending: usize,
}

impl Timers {
    /// Adds a timer that should wake `waker` at `deadline`.
    pub(crate) fn add(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let index = self.free;
        if index as usize == self.slots.len() {
            self.slots.push(Slot { next_free: index + 1, ..Slot::default() });
        }
        let slot = &mut self.slots[index as usize];
        self.free = slot.next_free;
        let generation = NonZeroU32::new(slot.generation.wrapping_add(1)).unwrap_or(NonZeroU32::MIN);
        slot.generation = generation.get();
        slot.waker = Some(waker);
        let key = TimerKey { index, generation };
        self.heap.push(Reverse((deadline, index, generation.get())));
        self.pending += 1;
        key
    }

    /// The slot of a timer that is still pending.
    fn slot(&mut self, key: TimerKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation.get() && slot.waker.is_some())
    }

    /// Replaces the waker of a pending timer. `false` if it already fired (or was removed).
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.slot(key) {
            Some(slot) => {
                if !slot.waker.as_ref().is_some_and(|stored| stored.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Removes a pending timer and returns its waker (for the caller to drop
    /// outside any lock). Its heap entry stays, stale, until it is popped.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        let free = self.free;
        let slot = self.slot(key)?;
        let waker = slot.waker.take();
        slot.next_free = free;
        self.free = key.index;
        self.pending -= 1;
        waker
    }

    /// The earliest deadline in the heap (perhaps a stale one: then the
    /// reactor wakes a little early, finds nothing due, and looks again).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    // ANCHOR: expired
    /// Takes out every timer due at `now`, in deadline order, with its waker.
    pub(crate) fn expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, index, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(generation) = NonZeroU32::new(generation) {
                wakers.extend(self.remove(TimerKey { index, generation })); // nothing if stale
            }
        }
    }
    // ANCHOR_END: expired

    /// How many timers are pending.
    pub(crate) fn len(&self) -> usize {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// A waker that counts its wakes, and a way to tell wakers apart.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    #[test]
    fn due_timers_come_out_in_deadline_order_and_removed_ones_never() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut timers = Timers::default();
        let counts: Vec<_> = (0..4).map(|_| counter()).collect();
        let _third = timers.add(at(30), counts[2].1.clone());
        let _first = timers.add(at(10), counts[0].1.clone());
        let removed = timers.add(at(5), counts[3].1.clone());
        let _second = timers.add(at(20), counts[1].1.clone());
        assert_eq!(timers.len(), 4);
        assert!(timers.remove(removed).is_some());
        assert!(timers.remove(removed).is_none(), "a timer is removed once");
        assert_eq!(timers.next_deadline(), Some(at(5)), "the stale entry is still on top");

        let mut due = Vec::new();
        timers.expired(at(25), &mut due);
        assert_eq!(due.len(), 2, "5 (removed) is skipped; 10 and 20 are due");
        for waker in due {
            waker.wake();
        }
        let woken: Vec<usize> = counts.iter().map(|(count, _)| count.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [1, 1, 0, 0]);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_an_old_key() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let (_, waker) = counter();
        let old = timers.add(now, waker.clone());
        timers.remove(old);
        let new = timers.add(now + Duration::from_secs(1), waker.clone());
        assert_eq!(new.index, old.index, "the free slot is reused");
        assert!(!timers.update(old, &waker), "the old key no longer matches");
        assert!(timers.update(new, &waker));
        let mut due = Vec::new();
        timers.expired(now, &mut due);
        assert!(due.is_empty(), "the old entry is stale; the new one is not due yet");
        assert_eq!(timers.len(), 1);
    }
}
