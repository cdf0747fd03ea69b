//! The reactor's timer table: a min-heap of deadlines, and a map of wakers.
//!
//! The reactor needs the earliest deadline (its `epoll_wait` timeout) and,
//! after waking up, every timer that is due: a binary heap gives both in
//! `O(log n)`. But a sleeping future must also find *its* entry again, to
//! replace its waker (it was polled from another task) or to remove it (it
//! was dropped early, e.g. by `timeout`), and a heap cannot find anything
//! but its smallest element. So each timer gets a key, a number no other
//! timer of the table ever gets, its waker lives in a map under that key,
//! and the heap holds only `(deadline, key)`:
//!
//! ```text
//!   heap (earliest first)              map: key → waker
//!   (12:00:00.050, key 7) ──────────▶  7: waker of task 3
//!   (12:00:00.100, key 4) ──────────▶  4: waker of task 2
//!   (12:00:00.200, key 5)   stale: 5 is not in the map (removed), skipped
//! ```
//!
//! Removing a timer takes its waker out of the map at once (so a finished
//! task is not kept alive), but leaves its heap entry behind: the entry is
//! stale, and skipped. That is *lazy deletion*: `O(1)` cancellation, for 24
//! bytes per cancelled timer. Left alone, those bytes would stay until each
//! deadline passed: a million cancelled one-hour timeouts would hold 24 MB
//! for an hour, and wake the reactor at a million dead deadlines. So two
//! rules bound them:
//!
//! - a stale entry that reaches the top is dropped at once, so the reactor
//!   never sleeps until a dead deadline;
//! - when stale entries outnumber live ones (by more than
//!   [`COMPACT_SLACK`]), the heap keeps only its live entries, and the heap
//!   and the map give their spare memory back. That costs one pass over the
//!   heap, paid for by the many removals that made it necessary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU64;
use std::task::Waker;
use std::time::Instant;

/// Stale heap entries allowed beyond the number of live timers before the
/// heap is compacted: small enough to bound the waste, large enough that a
/// handful of timers does not compact on every removal.
pub(crate) const COMPACT_SLACK: usize = 1024;

/// A timer's key: a number no other timer of its table ever gets.
///
/// Eight bytes, and `Option<TimerKey>` too (a key is never 0): it is part
/// of every sleeping future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey(NonZeroU64);

/// Pending timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// `(deadline, key)`, earliest on top; may hold stale entries.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The wakers of the pending timers, by key.
    wakers: HashMap<u64, Waker, BuildHasherDefault<KeyHasher>>,
    /// The last key handed out.
    last_key: u64,
}

impl Timers {
    /// Adds a timer that should wake `waker` at `deadline`.
    pub(crate) fn add(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        self.last_key += 1; // 2^64 timers: this counter does not wrap
        let key = self.last_key;
        self.wakers.insert(key, waker);
        self.heap.push(Reverse((deadline, key)));
        TimerKey(NonZeroU64::new(key).unwrap_or(NonZeroU64::MIN))
    }

    /// Replaces the waker of a pending timer. `false` if it already fired (or was removed).
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.wakers.get_mut(&key.0.get()) {
            Some(stored) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Removes a pending timer and returns its waker (for the caller to drop
    /// outside any lock). Its heap entry stays, stale, until it reaches the
    /// top or the heap is compacted.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<Waker> {
        let waker = self.wakers.remove(&key.0.get())?;
        if self.heap.len() > 2 * self.wakers.len() + COMPACT_SLACK {
            self.compact();
        }
        Some(waker)
    }

    // ANCHOR: compact
    /// Keeps only the live heap entries, and gives spare memory back.
    fn compact(&mut self) {
        let mut heap = std::mem::take(&mut self.heap).into_vec();
        heap.retain(|Reverse((_, key))| self.wakers.contains_key(key));
        heap.shrink_to(2 * heap.len() + COMPACT_SLACK);
        self.heap = BinaryHeap::from(heap); // O(n) to restore the heap order
        self.wakers.shrink_to(2 * self.wakers.len() + COMPACT_SLACK);
    }
    // ANCHOR_END: compact

    /// The earliest deadline of a pending timer. Stale entries on top are
    /// dropped first, so the reactor never sleeps until a dead deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, key))) = self.heap.peek() {
            if self.wakers.contains_key(&key) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    // ANCHOR: expired
    /// Takes out every timer due at `now`, in deadline order, with its waker.
    pub(crate) fn expired(&mut self, now: Instant, wakers: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, key))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            wakers.extend(self.wakers.remove(&key)); // nothing if stale
        }
    }
    // ANCHOR_END: expired

    /// How many timers are pending.
    pub(crate) fn len(&self) -> usize {
        self.wakers.len()
    }
}

/// Hashes a timer key. Keys are consecutive numbers we made ourselves, so
/// they need no protection against crafted collisions (std's default,
/// SipHash, costs some 20 ns a key); one multiplication by an odd constant
/// spreads them over the table's buckets (Fibonacci hashing).
#[derive(Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still hashes.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = (self.0 ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
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
        assert_eq!(timers.heap.len(), 4, "its entry is still in the heap, stale");
        assert_eq!(timers.next_deadline(), Some(at(10)), "the stale entry on top is skipped (and dropped)");
        assert_eq!(timers.heap.len(), 3);

        let mut due = Vec::new();
        timers.expired(at(25), &mut due);
        assert_eq!(due.len(), 2, "10 and 20 are due");
        for waker in due {
            waker.wake();
        }
        let woken: Vec<usize> = counts.iter().map(|(count, _)| count.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [1, 1, 0, 0]);
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn an_old_key_never_finds_a_later_timer() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let (_, waker) = counter();
        let old = timers.add(now, waker.clone());
        timers.remove(old);
        let new = timers.add(now + Duration::from_secs(1), waker.clone());
        assert_ne!(new, old, "keys are never reused");
        assert!(!timers.update(old, &waker), "the old key no longer matches");
        assert!(timers.update(new, &waker));
        let mut due = Vec::new();
        timers.expired(now, &mut due);
        assert!(due.is_empty(), "the old entry is stale; the new one is not due yet");
        assert_eq!(timers.len(), 1);
    }

    /// Heap entries, and the room the heap and the map keep.
    fn footprint(timers: &Timers) -> (usize, usize, usize) {
        (timers.heap.len(), timers.heap.capacity(), timers.wakers.capacity())
    }

    #[test]
    fn a_million_cancelled_timeouts_leave_the_table_small() {
        const MANY: usize = 1_000_000;
        let far = Instant::now() + Duration::from_secs(3600);
        let (_, waker) = counter();
        let mut timers = Timers::default();
        // One at a time, as a loop of `timeout(1 hour, something quick)` does.
        let mut peak = (0, 0, 0);
        for _ in 0..MANY {
            let key = timers.add(far, waker.clone());
            assert!(timers.remove(key).is_some());
            let now = footprint(&timers);
            peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
        }
        assert!(peak.0 <= COMPACT_SLACK + 2, "heap entries peaked at {}", peak.0);
        assert!(peak.1 <= 4 * COMPACT_SLACK, "heap room peaked at {}", peak.1);
        assert!(peak.2 <= 4 * COMPACT_SLACK, "map room peaked at {}", peak.2);

        // All at once, as a million tasks each in a `timeout` that finishes.
        let keys: Vec<_> = (0..MANY).map(|_| timers.add(far, waker.clone())).collect();
        assert_eq!(timers.len(), MANY);
        for key in keys {
            assert!(timers.remove(key).is_some());
        }
        let (entries, heap_room, map_room) = footprint(&timers);
        assert_eq!(timers.len(), 0);
        assert!(entries <= COMPACT_SLACK, "{entries} stale entries left");
        assert!(heap_room <= 4 * COMPACT_SLACK, "the heap kept room for {heap_room} entries");
        assert!(map_room <= 4 * COMPACT_SLACK, "the map kept room for {map_room} wakers");
        assert_eq!(timers.next_deadline(), None, "no dead deadline to wake for");
    }

    #[test]
    fn compaction_keeps_live_timers_and_their_keys() {
        let now = Instant::now();
        let (_, waker) = counter();
        let mut timers = Timers::default();
        let live: Vec<_> = (0..10).map(|i| timers.add(now + Duration::from_millis(i), waker.clone())).collect();
        let doomed: Vec<_> =
            (0..3 * COMPACT_SLACK).map(|_| timers.add(now + Duration::from_secs(60), waker.clone())).collect();
        for key in doomed {
            timers.remove(key);
        }
        assert!(timers.heap.len() < COMPACT_SLACK + 10, "compacted: {} entries", timers.heap.len());
        for key in &live {
            assert!(timers.update(*key, &waker), "a live key still finds its timer");
        }
        let mut due = Vec::new();
        timers.expired(now + Duration::from_millis(4), &mut due);
        assert_eq!(due.len(), 5, "deadlines 0..=4 ms are due");
    }
}
