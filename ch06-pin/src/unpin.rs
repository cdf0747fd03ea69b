//! Asking the compiler whether a type is `Unpin`, to print the answer.
//!
//! `Unpin` is an *auto trait*: the compiler implements it for every type
//! whose fields are all `Unpin`, which is nearly every type. The exceptions:
//! [`PhantomPinned`](std::marker::PhantomPinned) (its only job), the futures
//! the compiler writes for `async fn` and `async` blocks (they may hold a
//! borrow of their own locals across an `.await`), and any type that
//! contains one of those by value. A pointer to anything is `Unpin`
//! (`Box<T>`, `&mut T`, `Pin<Box<T>>`): moving the pointer moves nothing it
//! points at.
//!
//! A program cannot branch on "is `T: Unpin`" (that would be
//! specialisation, which stable Rust does not have), but a macro can, at a
//! place where the type is known, through a rule of method lookup: for
//! `(&probe).is_unpin()`, the compiler first looks for a method that takes
//! `&Probe<T>` and only then one that takes `&&Probe<T>`. [`Unpinned`]
//! provides the first, for `T: Unpin` only; [`NotUnpin`] provides the
//! second, for every `T`. So the answer is the compiler's own; the tests
//! check it against plain `T: Unpin` bounds.
//!
//! ```
//! use ch06_pin::{unpin_of_type, unpin_of_value};
//! assert!(unpin_of_type!(String));
//! assert!(!unpin_of_type!(std::marker::PhantomPinned));
//! assert!(!unpin_of_value!(async { 1 }));
//! assert!(unpin_of_value!(Box::pin(async { 1 })));
//! ```

use std::marker::PhantomData;

/// A zero-sized stand-in for a value of type `T`, to look methods up on.
#[derive(Debug)]
pub struct Probe<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Probe<T> {
    /// A probe for the type `T`.
    pub fn new() -> Probe<T> {
        Probe(PhantomData)
    }
}

impl<T: ?Sized> Default for Probe<T> {
    fn default() -> Probe<T> {
        Probe::new()
    }
}

/// A probe for the type of `value` (also for types that have no name, like
/// an `async fn`'s future). The value is only borrowed, never polled.
pub fn probe_of<T: ?Sized>(_value: &T) -> Probe<T> {
    Probe::new()
}

/// Found first by method lookup, and only when `T: Unpin`.
pub trait Unpinned {
    /// `true`: the compiler found `T: Unpin`.
    fn is_unpin(&self) -> bool {
        true
    }
}

impl<T: ?Sized + Unpin> Unpinned for Probe<T> {}

/// Found when [`Unpinned`] does not apply: `T` is not `Unpin`.
pub trait NotUnpin {
    /// `false`: the compiler did not find `T: Unpin`.
    fn is_unpin(&self) -> bool {
        false
    }
}

impl<T: ?Sized> NotUnpin for &Probe<T> {}

/// `unpin_of_type!(SomeType)`: whether the compiler considers it `Unpin`.
///
/// Works where the type is known (a concrete type, not a generic `T`: inside
/// a generic function the answer would always be the `T: ?Sized` one).
#[macro_export]
macro_rules! unpin_of_type {
    ($type:ty) => {{
        #[allow(unused_imports)]
        use $crate::unpin::{NotUnpin as _, Unpinned as _};
        (&$crate::unpin::Probe::<$type>::new()).is_unpin()
    }};
}

/// `unpin_of_value!(expr)`: whether the type of `expr` is `Unpin`. The
/// expression is evaluated (a future is created, not polled) and dropped.
#[macro_export]
macro_rules! unpin_of_value {
    ($value:expr) => {{
        #[allow(unused_imports)]
        use $crate::unpin::{NotUnpin as _, Unpinned as _};
        let value = $value;
        (&$crate::unpin::probe_of(&value)).is_unpin()
    }};
}
