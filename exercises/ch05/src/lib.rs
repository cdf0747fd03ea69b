//! # Chapter 5 exercises: your code
//!
//! One file per exercise, in the order to do them; each says what to build
//! and has a `todo!()` where your code goes. Check your work with
//!
//! ```text
//! cargo run -p ch05-exercises          # every exercise of the chapter
//! cargo run -p ch05-exercises -- 2     # only exercise 2
//! ```
//!
//! The tasks, with hints, are in the book: `docs/src/ch05-exercises.md`.
//!
//! (The `solution` feature builds this crate from `../solutions/` instead:
//! that is how CI proves each check passes on a real solution. The book's
//! solution page shows the same files.)

#[cfg_attr(feature = "solution", path = "../solutions/yield_now.rs")]
pub mod yield_now;

#[cfg_attr(feature = "solution", path = "../solutions/join.rs")]
pub mod join;

#[cfg_attr(feature = "solution", path = "../solutions/bounded.rs")]
pub mod bounded;

#[cfg_attr(feature = "solution", path = "../solutions/budget.rs")]
pub mod budget;
