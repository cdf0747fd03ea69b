//! Exercise 6.2: pin projection by hand, for a two-field future.
//!
//! `map(future, f)` runs `future`, then `f` on its output:
//! `map(get, |response| response.status)`. `Map` has two fields, and its
//! pin treats them differently; choosing how is *pin projection*:
//!
//! - `future` is **structurally pinned**: it may be an `async fn`'s future,
//!   which must stay where it was first polled, so a pinned `Map` hands it
//!   out only as `Pin<&mut _>`. When it finishes, it is dropped at once and
//!   in place (`Pin::set(None)`), before `f` runs: it may hold a socket.
//! - `f` is **not pinned**: calling an `FnOnce` moves it out
//!   (`Option::take`), which is harmless, since nothing points into it.
//!
//! Write `project`, the one `unsafe` step, with a `// SAFETY:` comment that
//! says why each rule of structural pinning holds for `Map` (chapter 6,
//! "Structural pinning"), then `poll`. Polling a `Map` again after it
//! returned `Ready` panics, as an `async fn`'s future does.
//!
//! Check it: `cargo run -p ch06-exercises -- 2`

// Starter code: until your code uses them, the arguments, the fields and
// some imports look unused. Delete this line when your code uses them.
#![allow(unused_variables, unused_imports, dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Runs `future`, then `f` on its output: `map(get, |response| response.status)`.
pub fn map<F, G, T>(future: F, f: G) -> Map<F, G>
where
    F: Future,
    G: FnOnce(F::Output) -> T,
{
    Map { future: Some(future), f: Some(f) }
}

/// The future [`map`] returns.
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Map<F, G> {
    /// The future, until it finishes; then `None`. Structurally pinned: it
    /// may be an `async fn`'s future, which must stay where it was first
    /// polled, so it is only ever reached as `Pin<&mut _>`.
    future: Option<F>,
    /// The function, until it is called. Not pinned: calling an `FnOnce`
    /// moves it, and moving it is harmless (nothing points into it).
    f: Option<G>,
}

/// `Map`'s fields as its projection hands them out.
struct Fields<'a, F, G> {
    /// Pinned: polled in place, and dropped in place with `Pin::set`.
    future: Pin<&'a mut Option<F>>,
    /// Not pinned: a plain `&mut`, so it may be taken out.
    f: &'a mut Option<G>,
}

impl<F, G> Map<F, G> {
    /// Pin projection: a pinned `Map` gives a pinned `future` and a plain
    /// `&mut` to `f`.
    fn project(self: Pin<&mut Self>) -> Fields<'_, F, G> {
        // Your code: one `unsafe` block, and above it the `// SAFETY:`
        // comment that says why it is sound.
        todo!("get_unchecked_mut, then Pin::new_unchecked for `future` and a plain &mut for `f`")
    }
}

impl<F, G, T> Future for Map<F, G>
where
    F: Future,
    G: FnOnce(F::Output) -> T,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        todo!("project; poll the future in place; once it is ready, drop it in place, then take f and call it")
    }
}
