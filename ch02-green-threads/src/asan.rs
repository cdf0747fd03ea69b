//! Telling AddressSanitizer about our stacks (cargo feature `asan`).
//!
//! AddressSanitizer (ASan) keeps a "shadow" of every byte the program may
//! touch, and marks the bytes around each stack variable as poison, so that
//! an out-of-bounds access is caught. It assumes each thread has one stack.
//! Our fibers break that assumption twice:
//!
//! - a switch moves the thread to another stack behind ASan's back, so it
//!   must be told before (`__sanitizer_start_switch_fiber`: where we go) and
//!   after (`__sanitizer_finish_switch_fiber`: we arrived);
//! - a finished fiber's stack is reused: the poison its frames left behind
//!   is still in the shadow, and the next fiber (or clearing the stack) would
//!   trip over it, so the stack is unpoisoned before it is used again.
//!
//! The functions exist only in a program built with `-Zsanitizer=address`
//! (nightly), so they are declared behind the feature; without it every
//! function here is an empty `#[inline(always)]` one and costs nothing.
//! `.ci/asan` runs the workspace's tests with the sanitizer and the feature.

use std::ffi::c_void;

/// Whether the annotations are compiled in (the `asan` feature).
pub const ENABLED: bool = cfg!(feature = "asan");

/// The fake stack ASan keeps for the fiber that is switching away (for
/// detecting use after return), handed from [`start_switch`] to
/// [`finish_switch`].
pub(crate) type FakeStack = *mut c_void;

#[cfg(feature = "asan")]
mod runtime {
    use std::ffi::c_void;

    unsafe extern "C" {
        /// About to switch to the stack `[bottom, bottom + size)`; saves the
        /// running fiber's fake stack in `*fake_stack_save` (null: the
        /// running fiber ends for good, free its fake stack).
        pub fn __sanitizer_start_switch_fiber(fake_stack_save: *mut *mut c_void, bottom: *const c_void, size: usize);
        /// Arrived on the new stack; `fake_stack_save` is what the matching
        /// start saved for this fiber (null for a fiber's first run). Tells
        /// the bounds of the stack we came from.
        pub fn __sanitizer_finish_switch_fiber(
            fake_stack_save: *mut c_void,
            bottom_old: *mut *const c_void,
            size_old: *mut usize,
        );
        /// Marks `[addr, addr + size)` as addressable again.
        pub fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
    }
}

/// Before a switch to the stack `[bottom, bottom + size)`. Returns what to
/// pass to [`finish_switch`] when this fiber runs again.
#[inline(always)]
pub(crate) fn start_switch(bottom: usize, size: usize) -> FakeStack {
    #[cfg(feature = "asan")]
    {
        let mut save = std::ptr::null_mut();
        // SAFETY: `save` is a valid place for ASan to write one pointer, and
        // the bounds are those of the stack the caller switches to next.
        unsafe { runtime::__sanitizer_start_switch_fiber(&mut save, bottom as *const c_void, size) };
        save
    }
    #[cfg(not(feature = "asan"))]
    {
        let _ = (bottom, size);
        std::ptr::null_mut()
    }
}

/// Before the last switch away from a finished fiber (its fake stack goes).
#[inline(always)]
pub(crate) fn start_final_switch(bottom: usize, size: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: null means "this fiber ends"; the bounds are those of the next stack.
    unsafe {
        runtime::__sanitizer_start_switch_fiber(std::ptr::null_mut(), bottom as *const c_void, size)
    };
    #[cfg(not(feature = "asan"))]
    let _ = (bottom, size);
}

/// After a switch, back on this fiber's stack: `saved` is what
/// [`start_switch`] returned before it switched away (null on a fiber's
/// first run).
#[inline(always)]
pub(crate) fn finish_switch(saved: FakeStack) {
    #[cfg(feature = "asan")]
    // SAFETY: `saved` came from the start_switch of this fiber's last switch
    // (or is null for its first run); we do not ask for the old bounds.
    unsafe {
        runtime::__sanitizer_finish_switch_fiber(saved, std::ptr::null_mut(), std::ptr::null_mut())
    };
    #[cfg(not(feature = "asan"))]
    let _ = saved;
}

/// Marks `[start, start + len)` addressable again: a stack about to be
/// reused or scanned, whose old poison would otherwise look like a bug.
#[inline(always)]
pub(crate) fn unpoison(start: *const u8, len: usize) {
    #[cfg(feature = "asan")]
    // SAFETY: only ASan's shadow of the range changes; the caller owns it.
    unsafe {
        runtime::__asan_unpoison_memory_region(start.cast(), len)
    };
    #[cfg(not(feature = "asan"))]
    let _ = (start, len);
}

/// The calling thread's own stack as `(lowest address, size)`, which is the
/// main fiber's stack; `(0, 0)` without the feature (nothing needs it then).
pub(crate) fn thread_stack() -> (usize, usize) {
    #[cfg(feature = "asan")]
    {
        // SAFETY: an all-zero pthread_attr_t is only a place for
        // pthread_getattr_np to fill in; we destroy it after use, and read
        // the stack bounds through pointers to our own locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return (0, 0);
            }
            let (mut bottom, mut size) = (std::ptr::null_mut(), 0usize);
            let ok = libc::pthread_attr_getstack(&attr, &mut bottom, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if ok { (bottom as usize, size) } else { (0, 0) }
        }
    }
    #[cfg(not(feature = "asan"))]
    (0, 0)
}
