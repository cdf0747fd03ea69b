//! Exercise 2.1: a sleep that lets the other fibers run.
//!
//! `std::thread::sleep` blocks the OS thread, and with it every fiber on the
//! thread: nobody else runs until it returns. Write the fiber's own
//! `sleep_until`: the sleeping fiber keeps giving its turn away until the
//! deadline has passed, so the others run meanwhile. That is cooperation:
//! nobody takes the CPU from a fiber, it has to hand it on.
//!
//! Check it: `cargo run -p ch02-exercises -- 1`

// Starter code: `todo!()` leaves the argument unused. Delete this line when
// your code uses it.
#![allow(unused_variables)]

use std::time::Instant;

/// Returns once `deadline` has passed (at once if it already has), letting
/// the other fibers of the runtime run meanwhile. Outside a runtime it still
/// returns after the deadline.
pub fn sleep_until(deadline: Instant) {
    todo!("give your turn away until the deadline has passed")
}
