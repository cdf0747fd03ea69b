//! # Chapter 6: self-referential futures and `Pin`
//!
//! Chapter 4 noted that `std`'s `Future::poll` takes `self: Pin<&mut Self>`
//! and left the reason for later. Here it is. An `async fn` that keeps a
//! borrow of its own local across an `.await` becomes a state machine that
//! stores the local *and* a pointer to it: a value that points into itself.
//! Moving such a value copies the pointer unchanged, so it goes on pointing
//! at the old place. `Pin` is the promise that the value will not move
//! again, and the compiler enforces it for every type that needs it.
//!
//! The chapter shows the problem before the tool, and never with undefined
//! behaviour: a moved value's addresses are printed and compared, and a
//! stale pointer is never followed.
//!
//! ```
//! use ch06_pin::moving::move_into_box;
//! use ch06_pin::pinned::PinnedSelfRef;
//!
//! // Unpinned: the move leaves the pointer behind (compared, not followed).
//! let (moved, _value) = move_into_box("hello");
//! assert!(moved.before.points_at_itself());
//! assert_ne!(moved.after.field, moved.before.field);
//! assert_eq!(moved.after.pointer, moved.before.field);
//!
//! // Pinned first, then pointed at itself: moving the `Pin<Box<_>>` moves
//! // only the box's pointer; the value, and so the pointer inside, stay true.
//! let pinned = PinnedSelfRef::boxed("hello");
//! let before = pinned.addresses();
//! let moved = vec![pinned]; // a move of the Pin<Box<_>>
//! assert_eq!(moved[0].addresses(), before);
//! assert_eq!(moved[0].as_ref().name_via_pointer(), Some("hello"));
//! ```
//!
//! ## Layout
//!
//! - [`moving`]: the problem. [`SelfRef`](moving::SelfRef), a struct that
//!   points at its own field, moved into a box and swapped; [`Addresses`](moving::Addresses).
//! - [`pinned`]: the tool. [`PinnedSelfRef`](pinned::PinnedSelfRef), `!Unpin`
//!   through `PhantomPinned` and initialised through `Pin<&mut Self>`;
//!   `Box::pin`, `pin!` and `Pin::new_unchecked`.
//! - [`forbidden`]: what the compiler refuses, as `compile_fail` doc tests
//!   with their error codes.
//! - [`pin_rules`]: what a hand-written projection relies on (`impl Unpin`
//!   is safe to write; a `Drop` through `inner_drop`), and why `&mut F` is
//!   a future only for `F: Unpin`: doc tests.
//! - [`unpin`]: asks the compiler whether a type is `Unpin`, to print it.
//! - [`projection`]: pin projection by hand: [`Observed`](projection::Observed)
//!   wraps a future, pins it structurally, and notes its address at each poll.
//! - [`coroutine`]: chapter 4's coroutine with a borrow across two awaits:
//!   [`FetchThreeInto`](coroutine::FetchThreeInto) by hand, with
//!   `self: Pin<&mut Self>`, next to the `async fn` with the same body;
//!   both run on chapter 5's runtime.
//! - [`log`]: the lines the coroutines print, recorded for comparison.
//! - [`place`]: which mapping an address is in (stack, heap), from `/proc/self/maps`.
//! - [`testing`]: a network-free GET, to step a coroutine by hand.
//!
//! Linux only, like chapter 5's runtime it runs on.

#[cfg(not(target_os = "linux"))]
compile_error!("ch06-pin supports Linux only: it runs on chapter 5's runtime (the workshop targets x86-64 Linux)");

pub mod coroutine;
pub mod log;
pub mod moving;
pub mod pinned;
pub mod place;
pub mod projection;
pub mod testing;
pub mod unpin;

#[doc = include_str!("forbidden.md")]
pub mod forbidden {}

#[doc = include_str!("pin_rules.md")]
pub mod pin_rules {}
