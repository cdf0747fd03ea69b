//! Exercise 2.2, solved: where is my stack?

use std::arch::asm;

// ANCHOR: stack_pointer
/// The value of `rsp` at the moment of the call: the lowest address of the
/// stack in use (the stack grows down, towards lower addresses).
#[inline(never)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: one `mov` from `rsp` into a register the compiler picks. It
    // reads no memory (`nomem`), pushes nothing (`nostack`) and leaves the
    // flags alone (`preserves_flags`), so it can break no assumption of the
    // code around it.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    // `#[inline(never)]` makes this the `rsp` of this function's own frame,
    // just below its caller's: the same stack, a few bytes further down.
    sp
}
// ANCHOR_END: stack_pointer
