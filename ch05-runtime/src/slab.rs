//! A `Vec` with holes: values get a small number (a key) that stays valid
//! until the value is removed, and freed places are reused.
//!
//! The runtime keeps every task that has waited in one of these, so that
//! dropping the runtime can find (and drop) tasks that sit in no queue: a
//! task waiting for a socket is only referenced by the waker the reactor holds.

/// One place in the slab.
#[derive(Debug)]
enum Entry<T> {
    /// Holds a value.
    Occupied(T),
    /// Free; the key of the next free place (or `entries.len()` for none).
    Vacant(usize),
}

/// Values stored under reusable `usize` keys.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// The places, occupied or free.
    entries: Vec<Entry<T>>,
    /// The first free place: the head of a list threaded through the
    /// `Vacant` entries. `entries.len()` when every place is taken.
    next_free: usize,
}

impl<T> Slab<T> {
    /// An empty slab.
    pub(crate) const fn new() -> Slab<T> {
        Slab { entries: Vec::new(), next_free: 0 }
    }

    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        let key = self.next_free;
        if key == self.entries.len() {
            self.entries.push(Entry::Occupied(value));
            self.next_free += 1;
        } else {
            let Entry::Vacant(next) = std::mem::replace(&mut self.entries[key], Entry::Occupied(value)) else {
                unreachable!("the free list only links vacant entries");
            };
            self.next_free = next;
        }
        key
    }

    /// Removes and returns the value under `key`, if there is one.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let entry = self.entries.get_mut(key)?;
        if let Entry::Vacant(_) = entry {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant(self.next_free)) else {
            unreachable!("checked just above");
        };
        self.next_free = key;
        Some(value)
    }

    /// Takes every value out, leaving the slab empty.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let values = std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Occupied(value) => Some(value),
                Entry::Vacant(_) => None,
            })
            .collect();
        self.next_free = 0;
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_reused_after_removal() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        let b = slab.insert("b");
        let c = slab.insert("c");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slab.remove(b), Some("b"));
        assert_eq!(slab.remove(b), None, "a key is removed once");
        assert_eq!(slab.remove(99), None);
        assert_eq!(slab.insert("d"), b, "the freed place is reused");
        assert_eq!(slab.insert("e"), 3);
        let mut rest = slab.drain();
        rest.sort_unstable();
        assert_eq!(rest, ["a", "c", "d", "e"]);
        assert_eq!(slab.insert("f"), 0, "an empty slab starts over");
    }
}
