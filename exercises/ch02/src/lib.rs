//! # Chapter 2 exercises: your code
//!
//! One file per exercise, in the order to do them; each says what to build
//! and has a `todo!()` where your code goes. Check your work with
//!
//! ```text
//! cargo run -p ch02-exercises          # every exercise of the chapter
//! cargo run -p ch02-exercises -- 2     # only exercise 2
//! ```
//!
//! The tasks, with hints, are in the book: `docs/src/ch02-exercises.md`.
//!
//! (The `solution` feature builds this crate from `../solutions/` instead:
//! that is how CI proves each check passes on a real solution. The book's
//! solution page shows the same files.)

#[cfg_attr(feature = "solution", path = "../solutions/sleep_until.rs")]
pub mod sleep_until;

#[cfg_attr(feature = "solution", path = "../solutions/stack_pointer.rs")]
pub mod stack_pointer;

#[cfg_attr(feature = "solution", path = "../solutions/fiber_local.rs")]
pub mod fiber_local;

#[cfg_attr(feature = "solution", path = "../solutions/share_the_cpu.rs")]
pub mod share_the_cpu;
