//! Exercise 2.3: a value per fiber.
//!
//! `thread_local!` gives every OS thread its own value. To a thread-local,
//! all the fibers of a thread are one thread: they share its value. (The
//! same goes for every C library that keeps per-thread state, one of the
//! reasons fibers and FFI mix badly.) Write the fibers' own version: a
//! `FiberLocal<T>` that gives every fiber its own `T`, made by `init` the
//! first time that fiber asks.
//!
//! One rule from the chapter's runtime applies to you too: a fiber may yield
//! inside `with`'s closure, and the next fiber may then use the same
//! `FiberLocal`. Nothing of yours may stay borrowed across that switch,
//! except the one fiber's own value.
//!
//! Check it: `cargo run -p ch02-exercises -- 3`

// Starter code: `todo!()` leaves the arguments unused. Delete this line
// when your code uses them.
#![allow(unused_variables, dead_code)]

use std::marker::PhantomData;

/// One `T` per fiber of this thread's runtime, each made by `init` the first
/// time its fiber calls [`FiberLocal::with`]. Outside a runtime, the thread
/// counts as the main fiber (id 0).
pub struct FiberLocal<T> {
    /// Makes a fiber's value, the first time that fiber asks for it.
    init: fn() -> T,
    /// Starter placeholder: replace it with where the values are kept.
    values: PhantomData<T>,
}

impl<T> FiberLocal<T> {
    /// A `FiberLocal` whose values `init` makes. No fiber has a value yet.
    pub fn new(init: fn() -> T) -> FiberLocal<T> {
        todo!("keep `init`, and make room for the values")
    }

    /// Runs `f` on the calling fiber's own value (made by `init` first, if
    /// this fiber has none yet) and returns what `f` returns. `f` may yield.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        todo!("find (or make) the calling fiber's value, and hand it to `f`")
    }
}
