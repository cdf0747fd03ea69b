//! Exercise 2.3, solved: a value per fiber.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ch02_green_threads::current_id;

// ANCHOR: fiber_local
/// One `T` per fiber of this thread's runtime, each made by `init` the first
/// time its fiber calls [`FiberLocal::with`]. Outside a runtime, the thread
/// counts as the main fiber (id 0).
///
/// Values are kept until the `FiberLocal` is dropped, also those of fibers
/// that have finished (the runtime does not tell us when a fiber ends).
pub struct FiberLocal<T> {
    /// Makes a fiber's value, the first time that fiber asks for it.
    init: fn() -> T,
    /// Each fiber's value, by fiber id. Every value sits in a `RefCell` of
    /// its own, so one fiber can hold its value across a yield while
    /// another fiber looks up (or adds) its own in the table.
    values: RefCell<BTreeMap<u64, Rc<RefCell<T>>>>,
}

impl<T> FiberLocal<T> {
    /// A `FiberLocal` whose values `init` makes. No fiber has a value yet.
    pub fn new(init: fn() -> T) -> FiberLocal<T> {
        FiberLocal { init, values: RefCell::new(BTreeMap::new()) }
    }

    /// Runs `f` on the calling fiber's own value (made by `init` first, if
    /// this fiber has none yet) and returns what `f` returns. `f` may yield.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // Fiber ids are never reused within a runtime, so the id is a name.
        let fiber = current_id().unwrap_or(0);
        // The table is borrowed only for the lookup and the insert, never
        // while `f` runs: `f` may yield, and the next fiber needs the table.
        let found = self.values.borrow().get(&fiber).cloned();
        let value = found.unwrap_or_else(|| {
            let value = Rc::new(RefCell::new((self.init)())); // `init` runs with nothing borrowed
            self.values.borrow_mut().insert(fiber, Rc::clone(&value));
            value
        });
        // Only this fiber's value stays borrowed while `f` runs (and yields).
        // A `with` on the same FiberLocal inside `f`, from the same fiber,
        // would find it borrowed and panic, as `RefCell` does.
        let mut value = value.borrow_mut();
        f(&mut value)
    }
}
// ANCHOR_END: fiber_local
