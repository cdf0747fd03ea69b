//! # Chapter 3 exercises: your code
//!
//! One file per exercise, in the order to do them; each says what to build
//! and has a `todo!()` where your code goes. Check your work with
//!
//! ```text
//! cargo run -p ch03-exercises          # every exercise of the chapter
//! cargo run -p ch03-exercises -- 2     # only exercise 2
//! ```
//!
//! The tasks, with hints, are in the book: `docs/src/ch03-exercises.md`.
//!
//! (The `solution` feature builds this crate from `../solutions/` instead:
//! that is how CI proves each check passes on a real solution. The book's
//! solution page shows the same files.)

#[cfg_attr(feature = "solution", path = "../solutions/drain.rs")]
pub mod drain;

#[cfg_attr(feature = "solution", path = "../solutions/oneshot_echo.rs")]
pub mod oneshot_echo;

#[cfg_attr(feature = "solution", path = "../solutions/background_read.rs")]
pub mod background_read;

#[cfg_attr(feature = "solution", path = "../solutions/ring_read.rs")]
pub mod ring_read;
