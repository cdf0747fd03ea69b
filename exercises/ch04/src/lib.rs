//! # Chapter 4 exercises: your code
//!
//! One file per exercise, in the order to do them; each says what to build
//! and has a `todo!()` where your code goes. Check your work with
//!
//! ```text
//! cargo run -p ch04-exercises          # every exercise of the chapter
//! cargo run -p ch04-exercises -- 2     # only exercise 2
//! ```
//!
//! The tasks, with hints, are in the book: `docs/src/ch04-exercises.md`.
//!
//! (The `solution` feature builds this crate from `../solutions/` instead:
//! that is how CI proves each check passes on a real solution. The book's
//! solution page shows the same files.)

#[cfg_attr(feature = "solution", path = "../solutions/select.rs")]
pub mod select;

#[cfg_attr(feature = "solution", path = "../solutions/greet.rs")]
pub mod greet;

#[cfg_attr(feature = "solution", path = "../solutions/sleep.rs")]
pub mod sleep;
