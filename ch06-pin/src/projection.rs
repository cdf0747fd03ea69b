//! Pin projection by hand: from a pinned struct to its fields.
//!
//! A future that wraps another future gets `self: Pin<&mut Self>` and must
//! poll the inner one, which needs a `Pin<&mut Inner>`. Going from the
//! pinned whole to its parts is *projection*, and for each field we choose:
//!
//! - **structurally pinned**: the field is pinned whenever the struct is;
//!   we hand it out only as `Pin<&mut Field>`. Needed for a field we must
//!   poll (a future), since it may be `!Unpin`.
//! - **not pinned**: the field is handed out as a plain `&mut Field`, which
//!   allows moving it (`mem::take`, `mem::swap`). Fine for plain data that
//!   nothing points into: counters, `Vec`s, `Option`s of outputs.
//!
//! [`Observed`] wraps a future, pins it structurally, and notes where it is
//! at every poll (a `Vec`, not pinned). Its `project` is the one `unsafe`
//! step; the rules that make it sound are in its `// SAFETY:` comment. The
//! addresses it collects are this chapter's evidence: a pinned future is
//! polled at the same address every time, on whatever thread polls it.
//!
//! (The `pin-project` crate writes such a `project` from an attribute, and
//! checks the rules for you: it refuses a plain `Drop` impl, offering
//! `#[pinned_drop]`, and a hand-written `impl Unpin`, offering the `unsafe`
//! `UnsafeUnpin`. Chapter crates use no crates beyond libc, mio and anyhow,
//! so here it is by hand, and [`crate::pin_rules`] shows both traps.)

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

// ANCHOR: observed
/// A future that polls `inner` and notes `inner`'s address at each poll.
#[derive(Debug)]
pub struct Observed<F> {
    /// The wrapped future. Structurally pinned: reached only as `Pin<&mut F>`.
    inner: F,
    /// `inner`'s address at each poll so far. Not pinned: plain data.
    seen_at: Vec<usize>,
}

/// What an [`Observed`] future returns: the inner output, and the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<T> {
    /// What the inner future returned.
    pub output: T,
    /// Where the inner future was at each poll, in order (one entry per poll).
    pub seen_at: Vec<usize>,
}

impl<T> Observation<T> {
    /// How many times the inner future was polled.
    pub fn polls(&self) -> usize {
        self.seen_at.len()
    }

    /// The one address of every poll, or `None` if the future was seen in
    /// two places (it moved while pinned: a bug) or never polled.
    pub fn single_address(&self) -> Option<usize> {
        let first = *self.seen_at.first()?;
        self.seen_at.iter().all(|&address| address == first).then_some(first)
    }
}

/// `Observed`'s fields as projection hands them out.
struct Fields<'a, F> {
    /// Pinned: may be polled.
    inner: Pin<&'a mut F>,
    /// Where `inner` is.
    inner_at: usize,
    /// Not pinned: may be pushed to and taken.
    seen_at: &'a mut Vec<usize>,
}

impl<F> Observed<F> {
    /// Wraps `inner`; nothing is polled yet.
    pub fn new(inner: F) -> Observed<F> {
        Observed { inner, seen_at: Vec::new() }
    }

    /// Pin projection: a pinned `Observed` gives a pinned `inner` and a
    /// plain `&mut` to `seen_at`.
    fn project(self: Pin<&mut Self>) -> Fields<'_, F> {
        // SAFETY: `get_unchecked_mut` is sound if nothing moves a field we
        // treat as pinned, and `Pin::new_unchecked(&mut this.inner)` declares
        // `inner` pinned. The rules that keep that promise for `Observed`
        // (std's `pin` module, "structural pinning"; `src/pin_rules.md`):
        // 1. `inner` is handed out only here, and only pinned; no method of a
        //    pinned `Observed` gives `&mut F` or moves `inner` out.
        // 2. No `Drop` impl uses `inner` but through this projection. `drop`
        //    gets a plain `&mut self`, even for a pinned value, and could move
        //    `inner` out; a `Drop` written as std's `inner_drop` idiom would
        //    be fine. `Observed` needs none, so it has none.
        // 3. It is not `#[repr(packed)]` (the compiler may move a packed
        //    field to align it, e.g. before dropping it).
        // 4. `Observed<F>` is `Unpin` only if `F` is, so an `Unpin` wrapper
        //    cannot be used to move a `!Unpin` `inner` out through
        //    `Pin::get_mut`. The auto trait gives that, but only as long as
        //    no `impl<F> Unpin for Observed<F> {}` exists: such a line is
        //    safe code, and this block depends on its absence.
        // `seen_at` is not pinned: nothing points into it, moving it is fine.
        unsafe {
            let this = self.get_unchecked_mut();
            // The address through `&raw mut`: Miri's aliasing model counts a
            // `&F` (and even `&raw const`) as a read of the whole future,
            // which would retire a `&mut` an `async fn` keeps into itself.
            let inner_at = (&raw mut this.inner).addr();
            Fields { inner: Pin::new_unchecked(&mut this.inner), inner_at, seen_at: &mut this.seen_at }
        }
    }
}

impl<F: Future> Future for Observed<F> {
    type Output = Observation<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Observation<F::Output>> {
        let fields = self.project();
        fields.seen_at.push(fields.inner_at);
        let output = ready!(fields.inner.poll(cx));
        // `seen_at` is not pinned, so it may be moved out: `mem::take`.
        Poll::Ready(Observation { output, seen_at: mem::take(fields.seen_at) })
    }
}
// ANCHOR_END: observed
