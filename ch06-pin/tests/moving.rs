//! The move problem and its fix, checked through addresses only: no test
//! here follows a pointer that may be stale (they run under AddressSanitizer
//! too, see the crate README).

use std::pin::{Pin, pin};

use ch06_pin::moving::{self, SelfRef};
use ch06_pin::pinned::{self, PinnedSelfRef};

#[test]
fn moving_a_self_referential_value_leaves_its_pointer_at_the_old_place() {
    let (moved, boxed) = moving::move_into_box("hello");
    assert!(moved.before.points_at_itself(), "init points the value at itself: {:?}", moved.before);
    assert_ne!(moved.after.field, moved.before.field, "the move gave the field a new address");
    assert_eq!(moved.after.pointer, moved.before.field, "the pointer still holds the old address");
    assert!(!moved.after.points_at_itself());
    assert_eq!(boxed.addresses(), moved.after, "the box holds what was measured");
}

#[test]
fn swapping_two_values_crosses_their_pointers() {
    let swapped = moving::swap("a", "b");
    assert_ne!(swapped.a.field, swapped.b.field);
    assert_eq!(swapped.a.pointer, swapped.b.field, "a's pointer points at b's name");
    assert_eq!(swapped.b.pointer, swapped.a.field, "b's pointer points at a's name");
}

#[test]
fn pinning_an_unpin_value_does_not_stop_a_move() {
    // `SelfRef` is `Unpin`: `Pin::new` accepts it and `get_mut` gives it back.
    let mut a = SelfRef::new("a");
    let mut b = SelfRef::new("b");
    let pinned = Pin::new(&mut a);
    let a_again: &mut SelfRef = pinned.get_mut();
    a_again.init();
    std::mem::swap(a_again, &mut b);
    assert_eq!(b.addresses().pointer, a.addresses().field, "the moved value points at its old place");
}

#[test]
fn a_pinned_value_keeps_its_self_pointer_when_its_box_moves() {
    let pinned = PinnedSelfRef::boxed("hello");
    let before = pinned.addresses();
    assert!(before.points_at_itself());

    // Move the Pin<Box<_>> around: into a Vec, out of a function, across a swap.
    let mut boxes = vec![pinned, PinnedSelfRef::boxed("other")];
    boxes.swap(0, 1);
    let moved = pass_through(boxes.remove(1));
    assert_eq!(moved.addresses(), before, "the value did not move; only the box's pointer did");
    // Safe to follow now: the pointer points at the value's own, pinned field.
    assert_eq!(moved.as_ref().name_via_pointer(), Some("hello"));
    assert_eq!(boxes[0].as_ref().name_via_pointer(), Some("other"));
}

fn pass_through(value: Pin<Box<PinnedSelfRef>>) -> Pin<Box<PinnedSelfRef>> {
    value
}

#[test]
fn pinned_on_the_stack_with_pin_macro_and_by_hand() {
    let mut on_stack = pin!(PinnedSelfRef::new("pin!"));
    assert_eq!(on_stack.as_ref().name_via_pointer(), None, "not initialised yet");
    on_stack.as_mut().init();
    assert!(on_stack.addresses().points_at_itself());
    assert_eq!(on_stack.as_ref().name_via_pointer(), Some("pin!"));

    let read = pinned::on_the_stack_by_hand("by hand", |value| {
        assert!(value.addresses().points_at_itself());
        value.as_ref().name_via_pointer().map(str::to_string)
    });
    assert_eq!(read.as_deref(), Some("by hand"));
}
