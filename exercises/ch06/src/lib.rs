//! # Chapter 6 exercises: your code
//!
//! One file per exercise, in the order to do them; each says what to build
//! and has a `todo!()` where your code goes. Check your work with
//!
//! ```text
//! cargo run -p ch06-exercises          # every exercise of the chapter
//! cargo run -p ch06-exercises -- 2     # only exercise 2
//! ```
//!
//! The tasks, with hints, are in the book: `docs/src/ch06-exercises.md`.
//!
//! (The `solution` feature builds this crate from `../solutions/` instead:
//! that is how CI proves each check passes on a real solution. The book's
//! solution page shows the same files.)

#[cfg_attr(feature = "solution", path = "../solutions/first_of.rs")]
pub mod first_of;

#[cfg_attr(feature = "solution", path = "../solutions/map.rs")]
pub mod map;

#[cfg_attr(feature = "solution", path = "../solutions/read_record.rs")]
pub mod read_record;
