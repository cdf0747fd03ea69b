//! The tool: `Pin`, and a self-referential value that is safe to use.
//!
//! [`PinnedSelfRef`] is [`SelfRef`](crate::moving::SelfRef) with two
//! changes, and they are the whole recipe:
//!
//! 1. a [`PhantomPinned`] field, which makes the type `!Unpin`: "moving me
//!    may break me". For an `Unpin` type `Pin` promises nothing, and
//!    [`Pin::new`] / [`Pin::get_mut`] hand out `&mut` freely;
//! 2. [`init`](PinnedSelfRef::init) takes `self: Pin<&mut Self>`, so the
//!    pointer can only be set on a value that is pinned already, and a
//!    pinned `!Unpin` value stays at its address until it is dropped.
//!
//! So the order is: build it (moving is still fine: nothing points anywhere
//! yet), pin it, and only then point it at itself. After that, the safe API
//! gives nobody a `&mut PinnedSelfRef`, which is what `mem::swap` and
//! `mem::replace` would need to move it.
//!
//! Three ways to pin it:
//!
//! - [`Box::pin`]: on the heap ([`PinnedSelfRef::boxed`]). The `Pin<Box<_>>`
//!   itself is a pointer and moves freely; what it points at does not.
//! - [`std::pin::pin!`]: on the stack, in the current function's frame,
//!   for as long as that frame lives (see `tests/pinning.rs`).
//! - [`Pin::new_unchecked`]: by hand, with a promise the compiler cannot
//!   check ([`on_the_stack_by_hand`]); it is what `pin!` writes for you.

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr;

use crate::moving::Addresses;

// ANCHOR: pinned_self_ref
/// A value whose `points_to` points at its own `name`, made safe by `Pin`.
///
/// Not `Clone`: a clone would copy the pointer, which would then point into
/// the original.
#[derive(Debug)]
pub struct PinnedSelfRef {
    /// The data.
    name: String,
    /// Null until [`init`](Self::init); then `name`'s address, for good.
    points_to: *const String,
    /// Makes the type `!Unpin`, so a `Pin` of it really pins.
    _pinned: PhantomPinned,
}

impl PinnedSelfRef {
    /// A value that points nowhere yet: it may still be moved.
    pub fn new(name: &str) -> PinnedSelfRef {
        PinnedSelfRef { name: name.to_string(), points_to: ptr::null(), _pinned: PhantomPinned }
    }

    /// Points `points_to` at this value's own `name`. Only a pinned value can
    /// be initialised, and a pinned value never moves again: the pointer
    /// stays right until the value is dropped.
    pub fn init(self: Pin<&mut Self>) {
        // SAFETY: `get_unchecked_mut` gives a plain `&mut`, with which we could
        // move the value out of its pinned place; we only write one field of it.
        let this = unsafe { self.get_unchecked_mut() };
        this.points_to = &raw const this.name;
    }

    /// Reads `name` by following the pointer; `None` before `init`.
    pub fn name_via_pointer(self: Pin<&Self>) -> Option<&str> {
        if self.points_to.is_null() {
            return None;
        }
        // SAFETY: `points_to` is not null, so `init` set it, on this value,
        // while it was pinned, to its own `name`. A pinned `!Unpin` value is
        // not moved or freed before it is dropped, so `name` is still there,
        // and it outlives the borrow of `self` we return. Nothing writes to
        // `name` (no method hands out `&mut` to it), so reading is fine.
        let name: &String = unsafe { &*self.points_to };
        Some(name.as_str())
    }

    /// Where `name` is, and where the pointer points, read as numbers.
    pub fn addresses(&self) -> Addresses {
        Addresses { field: (&raw const self.name).addr(), pointer: self.points_to.addr() }
    }
}
// ANCHOR_END: pinned_self_ref

// ANCHOR: boxed
impl PinnedSelfRef {
    /// The usual way: pinned on the heap first, then pointed at itself.
    pub fn boxed(name: &str) -> Pin<Box<PinnedSelfRef>> {
        let mut pinned = Box::pin(PinnedSelfRef::new(name));
        pinned.as_mut().init(); // `as_mut`: a `Pin<&mut _>` borrowed from the `Pin<Box<_>>`
        pinned
    }
}
// ANCHOR_END: boxed

// ANCHOR: new_unchecked
/// Pins a [`PinnedSelfRef`] on this function's stack by hand, points it at
/// itself, and returns what `f` makes of it (the value cannot leave the frame).
pub fn on_the_stack_by_hand<T>(name: &str, f: impl FnOnce(Pin<&mut PinnedSelfRef>) -> T) -> T {
    let mut value = PinnedSelfRef::new(name);
    // SAFETY: the promise is that `value` never moves again before it is
    // dropped. The pinned reference *shadows* `value` on this very line, so
    // no later line can name the original to move it; the value stays in
    // this stack frame and is dropped in place when the function returns.
    // This is exactly what `std::pin::pin!` does for you, without `unsafe`.
    let mut value = unsafe { Pin::new_unchecked(&mut value) };
    value.as_mut().init();
    f(value)
}
// ANCHOR_END: new_unchecked

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_before_init_gives_none() {
        let pinned = Box::pin(PinnedSelfRef::new("not yet"));
        assert_eq!(pinned.as_ref().name_via_pointer(), None);
        assert_eq!(pinned.addresses().pointer, 0);
    }

    #[test]
    fn pinned_by_hand_points_at_itself() {
        let (addresses, name) = on_the_stack_by_hand("by hand", |value| {
            (value.addresses(), value.as_ref().name_via_pointer().map(str::to_string))
        });
        assert!(addresses.points_at_itself());
        assert_eq!(name.as_deref(), Some("by hand"));
    }
}
