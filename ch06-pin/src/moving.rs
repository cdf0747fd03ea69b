//! The problem: a value that points into itself, moved.
//!
//! [`SelfRef`] holds a `name` and a pointer meant to point at that `name`.
//! [`SelfRef::init`] sets the pointer to where `name` is *now*. Moving the
//! value copies its bytes to a new place, pointer included, and nothing
//! updates the pointer: it still holds the old address.
//!
//! ```text
//!  before the move                         after  let boxed = Box::new(value);
//!
//!  value, on the stack at A                boxed, on the heap at B
//!  ┌──────────────────────┐                ┌──────────────────────┐
//!  │ name: "hello"   (A)  │◄──┐            │ name: "hello"   (B)  │
//!  │ points_to: A ────────┼───┘            │ points_to: A ────────┼──► A: the old place,
//!  └──────────────────────┘                └──────────────────────┘    no longer `value`
//! ```
//!
//! We show this with two numbers, the field's address and the pointer's
//! value ([`Addresses`]), and never by following the pointer. Following it
//! after the move would be *undefined behaviour*: the old place is a stack
//! slot the compiler considers dead (it may already hold another variable),
//! or, for a value that lived in a box that was dropped, memory the allocator
//! may have handed to someone else. The compiler optimises on the assumption
//! that a program never does this, so the result is not "the old value" or
//! "garbage" but anything at all, and a test of it would pass or fail by luck.
//! The book this course follows shows the problem by reading through such a
//! pointer and ends in a double free; this crate's tests run under
//! AddressSanitizer to show that ours never touch a stale pointer.
//!
//! Moves are everywhere in Rust: returning a value, passing it by value,
//! pushing it into a `Vec` (and the `Vec` growing), `mem::swap`,
//! `mem::replace`. Any of them breaks a value that points into itself.
//! [`crate::pinned`] shows how `Pin` makes such a value safe.

use std::mem;
use std::ptr;

// ANCHOR: self_ref
/// A value whose `points_to` is meant to point at its own `name`.
///
/// Not `Clone` on purpose, and still easy to break: it is `Unpin` (a raw
/// pointer and a `String` are), so nothing stops a move.
#[derive(Debug)]
pub struct SelfRef {
    /// The data.
    name: String,
    /// Meant to point at `name` above. A raw pointer: a reference to its own
    /// field would keep the struct borrowed for the rest of its life, and the
    /// borrow checker would then refuse every later use of it.
    points_to: *const String,
}

impl SelfRef {
    /// A value whose pointer points nowhere yet (null).
    pub fn new(name: &str) -> SelfRef {
        SelfRef { name: name.to_string(), points_to: ptr::null() }
    }

    /// Points `points_to` at this value's own `name`, where it is right now.
    pub fn init(&mut self) {
        self.points_to = &raw const self.name;
    }

    /// Where `name` is, and where `points_to` points: two numbers, read
    /// without following the pointer.
    pub fn addresses(&self) -> Addresses {
        Addresses { field: (&raw const self.name).addr(), pointer: self.points_to.addr() }
    }
}
// ANCHOR_END: self_ref

/// Where a self-referential value's field is, and where its pointer points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// The address of the field the pointer is meant to point at.
    pub field: usize,
    /// The address the pointer holds (0 if it was never set).
    pub pointer: usize,
}

impl Addresses {
    /// Whether the pointer points at the value's own field.
    pub fn points_at_itself(&self) -> bool {
        self.field == self.pointer
    }
}

impl std::fmt::Display for Addresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.points_at_itself() { "points at its own name" } else { "points ELSEWHERE" };
        write!(f, "name at {:#x}, pointer -> {:#x} ({verdict})", self.field, self.pointer)
    }
}

// ANCHOR: move_into_box
/// What one move does to a [`SelfRef`]: its addresses before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Right after `init`, where the value was built.
    pub before: Addresses,
    /// After the value moved into a `Box`.
    pub after: Addresses,
}

/// Builds a [`SelfRef`] on the stack, points it at itself, then moves it
/// into a `Box` (to the heap): the bytes move, the pointer keeps the old
/// address. Returns the value too, so the caller can see it is whole.
pub fn move_into_box(name: &str) -> (Moved, Box<SelfRef>) {
    let mut value = SelfRef::new(name);
    value.init();
    let before = value.addresses();
    // The move. `value` and the box are both alive in this function, so
    // they are two different places: the addresses cannot coincide.
    let boxed = Box::new(value);
    let after = boxed.addresses();
    (Moved { before, after }, boxed)
}
// ANCHOR_END: move_into_box

// ANCHOR: swap
/// What `mem::swap` does to two initialised [`SelfRef`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    /// `a` after the swap.
    pub a: Addresses,
    /// `b` after the swap.
    pub b: Addresses,
}

/// Swaps two values that point into themselves: each pointer now points
/// into the *other* value. Following `a`'s would read `b`'s name, and after
/// `b` is dropped, freed memory.
pub fn swap(a_name: &str, b_name: &str) -> Swapped {
    let mut a = SelfRef::new(a_name);
    let mut b = SelfRef::new(b_name);
    a.init();
    b.init();
    mem::swap(&mut a, &mut b);
    Swapped { a: a.addresses(), b: b.addresses() }
}
// ANCHOR_END: swap

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_value_points_nowhere_and_init_points_it_at_itself() {
        let mut value = SelfRef::new("x");
        assert_eq!(value.addresses().pointer, 0);
        value.init();
        assert!(value.addresses().points_at_itself());
    }
}
