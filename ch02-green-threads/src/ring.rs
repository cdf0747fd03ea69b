//! The ring of fibers and the yield hot path.
//!
//! Every live fiber, the main fiber included, has a small [`Context`]: its
//! saved stack pointer and its two neighbours in one circular, doubly linked
//! list (a ring) in the order they take turns. The thread-local `CURRENT`
//! points at the running fiber's context; [`yield_now`] just moves on to its
//! successor: round robin, in three loads and a store. A new fiber is
//! inserted just before the running one, so it runs after everyone already
//! waiting; a finished one is unlinked (both in [`crate::runtime`]).
//!
//! ```text
//!            spawn inserts here (between `prev` and CURRENT)
//!                    v
//!   ... <--> [prev] <--> [CURRENT] <--> [next] <--> ... (back to the start)
//!                                  yield_now moves here
//! ```
//!
//! ## Why raw pointers are sound here
//!
//! The hot path touches only the contexts and `CURRENT`: no `RefCell`, no
//! bounds checks, no `Option`s (a yield round trip is two switches, and every
//! instruction here is paid twice per round trip). A context's fields are
//! `Cell`s and it is reached through raw pointers, which is sound because of
//! one ownership rule: **every context is owned (through an `Rc`) by this
//! thread's runtime, and is freed only after it has left the ring and is no
//! longer `CURRENT`.** So every pointer in the ring and in `CURRENT` points
//! at a live context.

use std::cell::Cell;
use std::ops::Range;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::{arch, asan};

// ANCHOR: context
/// What the hot path ([`yield_now`]) and the overflow handler need of a
/// fiber, at an address that does not move while the fiber lives (it sits
/// behind an `Rc` owned by the `Runtime`; see the module docs for why raw
/// pointers to it are sound).
pub(crate) struct Context {
    /// Its saved stack pointer while it is not running (written by
    /// `arch::switch` when it switches away, read when it is resumed).
    pub(crate) sp: Cell<*mut u8>,
    /// The fiber that runs after it (the ring's forward link).
    pub(crate) next: Cell<*const Context>,
    /// The fiber that runs before it (so spawn and exit can relink in O(1)).
    /// Atomic (plain `mov`s on x86-64, and off the yield path) because the
    /// overflow handler reads it: while a fiber is still pushing its registers
    /// in `arch::switch`, `CURRENT` already names its successor, whose `prev`
    /// is the fiber that is switching away (see [`guard_page_owner`]).
    pub(crate) prev: AtomicPtr<Context>,
    /// Its slot in `Runtime::fibers`.
    pub(crate) slot: usize,
    /// Its id: 0 for the main fiber, then 1, 2, ... in spawn order.
    pub(crate) id: u64,
    /// Its stack's guard page (empty for the main fiber), for the overflow
    /// handler. Never changes after the context is created.
    pub(crate) guard: Range<usize>,
    /// The lowest usable address of its stack (for AddressSanitizer, which
    /// must be told which stack a switch goes to; see [`crate::asan`]).
    pub(crate) stack_bottom: usize,
    /// The usable size of its stack, for the overflow message (and ASan).
    pub(crate) stack_size: usize,
    /// How the runtime switches (the same for every context of a runtime:
    /// the two kinds of switch leave different frames behind).
    pub(crate) switch: Switch,
}

// ANCHOR: switch_kind
/// Which context switch a runtime uses (`Config::switch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Switch {
    /// [`arch::switch`], the one this chapter teaches: a function every
    /// yield calls, which saves all six callee-saved registers and MXCSR and
    /// the x87 control word, and resumes with an indirect `jmp`.
    #[default]
    Call,
    /// Going faster: [`arch::inline`], the switch as inline assembly at the
    /// yield site. The compiler saves only the registers that are live
    /// there, and no call is left without its return.
    Inline {
        /// Also save and restore MXCSR and the x87 control word on every
        /// switch, so that each fiber keeps its own rounding mode (Boost.
        /// Context's `preserve_fpu`). Off in [`Switch::INLINE`]: the two
        /// words then belong to the thread, and a fiber that changes them
        /// changes them for all.
        save_float_control: bool,
    },
}

impl Switch {
    /// The inline switch without the control words: the fastest.
    pub const INLINE: Switch = Switch::Inline { save_float_control: false };
}
// ANCHOR_END: switch_kind

thread_local! {
    /// The running fiber's context, or null outside [`run`]. An atomic only
    /// because the overflow handler (a signal handler, which may interrupt
    /// the thread at any instruction) reads it too; on x86-64 its loads and
    /// stores are plain `mov`s. A constant initialiser and no destructor, so
    /// reading it is a single load at a fixed offset from the thread pointer.
    static CURRENT: AtomicPtr<Context> = const { AtomicPtr::new(std::ptr::null_mut()) };
}

/// Makes `context` the running one (null: no runtime). `Release` so that a
/// signal handler that loads the pointer (`Acquire`) also sees the fields
/// the context was created with; on x86-64 this is an ordinary store.
#[inline(always)]
pub(crate) fn set_current(context: *const Context) {
    CURRENT.with(|current| current.store(context.cast_mut(), Ordering::Release));
}

/// The running fiber's context (null outside [`run`]), for comparing with
/// a pointer the preemption handler stored; reading through it is for
/// [`with_current`].
#[inline(always)]
pub(crate) fn current_context() -> *const Context {
    CURRENT.with(|current| current.load(Ordering::Acquire))
}

/// Runs `f` with the running fiber's context; `None` outside [`run`].
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    let context = CURRENT.with(|current| current.load(Ordering::Acquire));
    // SAFETY: CURRENT is null or points at the running fiber's context, which
    // this thread's runtime owns and frees only after it has left the ring
    // and stopped being CURRENT (see the module docs). The reference lives
    // only for the call to `f`, during which the running fiber cannot finish.
    unsafe { context.as_ref() }.map(f)
}

/// For the overflow handler: if `fault` lies in the guard page of the running
/// fiber, or of the fiber that is switching to it, that fiber's id and stack
/// size. `None` otherwise (the main fiber has no guard page of ours) and
/// outside [`run`]. Async-signal-safe: two atomic loads and reads of fields
/// that never change after creation.
///
/// Why two fibers: a yield sets `CURRENT` to the successor *before* calling
/// `arch::switch`, whose first instructions still write the old fiber's
/// stack (the control words, then six pushes: 64 bytes below the call). A
/// fiber that recurses and yields on every level overflows exactly there,
/// and at that moment the overflowing fiber is `CURRENT`'s predecessor.
pub(crate) fn guard_page_owner(fault: usize) -> Option<(u64, usize)> {
    with_current(|current| {
        // SAFETY: ring links always point at live contexts (module docs), and
        // `prev` is atomic, so reading it from a signal handler is no data
        // race; `Acquire` pairs with the `Release` stores in spawn and exit,
        // so the context's fields are seen as they were created.
        let previous = unsafe { &*current.prev.load(Ordering::Acquire) };
        [current, previous]
            .into_iter()
            .find(|context| context.id != 0 && context.guard.contains(&fault))
            .map(|context| (context.id, context.stack_size))
    })
    .flatten()
}
// ANCHOR_END: context

// ANCHOR: yield_now
/// Lets the next ready fiber run; returns when it is this fiber's turn again.
/// Does nothing outside a runtime or when no other fiber is ready.
///
/// `#[inline(always)]` on purpose: the `call` to the switch then sits in the
/// caller's own code, which is what keeps the CPU's branch predictors right
/// (see `arch::x86_64`'s "Why `switch` ends in `jmp`").
#[inline(always)]
pub fn yield_now() {
    if let Some((how, save, resume, (bottom, size))) = prepare_yield() {
        let fake_stack = asan::start_switch(bottom, size); // nothing, unless built for ASan
        // SAFETY: `prepare_yield` made our successor in the ring current;
        // `save` points into our own context's `sp` cell (alive: we are in
        // the ring), `resume` is the saved stack pointer of a suspended (or
        // never started) fiber whose stack the runtime keeps mapped, saved
        // by the same kind of switch (`how` is the runtime's). No reference
        // to a context and no borrow of the runtime is held.
        unsafe { switch(how, save, resume) }
        asan::finish_switch(fake_stack);
    }
}
// ANCHOR_END: yield_now

// ANCHOR: switch_dispatch
/// Switches with the runtime's kind of switch. A branch the CPU always
/// predicts (a runtime never changes its kind), and `#[inline(always)]`, so
/// an inline switch really sits in the yielding function's code.
///
/// # Safety
///
/// As for [`arch::switch`], and `resume` was saved by (or made for) the
/// same kind of switch as `how`.
#[inline(always)]
pub(crate) unsafe fn switch(how: Switch, save: *mut *mut u8, resume: *mut u8) {
    // SAFETY: the caller's contract, passed on unchanged.
    unsafe {
        match how {
            Switch::Call => arch::switch(save, resume),
            Switch::Inline { save_float_control: false } => arch::inline::switch(save, resume),
            Switch::Inline { save_float_control: true } => arch::inline::switch_saving_float_control(save, resume),
        }
    }
}
// ANCHOR_END: switch_dispatch

/// [`yield_now`] through [`arch::switch_naive`], the switch that resumes with
/// `ret`: the same work, mispredicted. For the bench.
#[inline(always)]
pub fn yield_now_naive() {
    if let Some((how, save, resume, (bottom, size))) = prepare_yield() {
        let fake_stack = asan::start_switch(bottom, size);
        // SAFETY: as in `yield_now`; `arch::switch` and `switch_naive` save
        // the same frame layout, so a runtime of the `Call` kind may mix
        // them. Another kind has other frames: that runtime takes its own.
        unsafe {
            match how {
                Switch::Call => arch::switch_naive(save, resume),
                _ => switch(how, save, resume),
            }
        }
        asan::finish_switch(fake_stack);
    }
}

// ANCHOR: next_switch
/// The bookkeeping half of a yield: move on in the ring and return the kind
/// of switch and the two stack-pointer slots for it (and the next fiber's
/// stack, which only an ASan build reads). `None` outside a runtime or when
/// the running fiber is alone.
///
/// This is the hot path, so it touches nothing but the contexts: one
/// thread-local load, the successor link, one thread-local store, the
/// successor's saved stack pointer. No `RefCell` borrow, no slot index to
/// bounds-check, no `Option` to unwrap: each of those would be a load and a
/// branch on every switch, and some would be loads that wait for the one
/// before them.
#[inline(always)]
fn prepare_yield() -> Option<(Switch, *mut *mut u8, *mut u8, (usize, usize))> {
    with_current(|current| {
        let next = current.next.get();
        if ptr::eq(next, current) {
            return None;
        }
        // SAFETY: ring links always point at live contexts owned by the
        // runtime (see the module docs).
        let next = unsafe { &*next };
        set_current(next);
        // `sp` is a `Cell`: the switch writes our stack pointer into it
        // through this raw pointer, after every reference here is gone.
        Some((current.switch, current.sp.as_ptr(), next.sp.get(), (next.stack_bottom, next.stack_size)))
    })
    .flatten()
}
// ANCHOR_END: next_switch
