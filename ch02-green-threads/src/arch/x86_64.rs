//! The context switch for x86-64 (System V ABI: Linux, the BSDs, macOS).
//!
//! ## What must survive a switch
//!
//! A fiber gives up the CPU by *calling* [`switch`], so it only has to keep
//! what the calling convention says a called function must hand back
//! unchanged (the callee-saved state). Everything else the compiler already
//! assumes a call may destroy, and has saved itself if it needed it.
//!
//! | state | saved by `switch` | why |
//! |---|---|---|
//! | `rsp` | stored in the context | it *is* the context: where the rest is saved |
//! | `rbx`, `rbp`, `r12`-`r15` | pushed | callee-saved in the System V ABI |
//! | MXCSR (SSE rounding, flush-to-zero, exception masks) | `stmxcsr` / `ldmxcsr` | its control bits are callee-saved |
//! | x87 control word (precision, rounding) | `fnstcw` / `fldcw` | callee-saved |
//! | `rip` | the return address `call` pushed | where to continue |
//! | `rax`, `rcx`, `rdx`, `rsi`, `rdi`, `r8`-`r11`, `xmm0`-`xmm15` | no | caller-saved: a call may clobber them anyway |
//!
//! ## A suspended context's stack
//!
//! ```text
//!  higher addresses
//!  +-------------------------+
//!  | ...  the context's own  |
//!  |      frames             |
//!  +-------------------------+
//!  | return address          |  pushed by its `call switch`: where it resumes
//!  +-------------------------+
//!  | rbp                     |
//!  | rbx                     |
//!  | r12                     |
//!  | r13                     |
//!  | r14                     |
//!  | r15                     |
//!  +------------+------------+
//!  | x87 cw (2) | MXCSR (4)  |  one 8-byte slot: MXCSR at +0, x87 control word at +4
//!  +------------+------------+  <- saved stack pointer (what the context stores)
//!  lower addresses
//! ```
//!
//! ## The initial stack of a new fiber
//!
//! [`init_stack`] writes a frame that looks exactly like a suspended context,
//! so the first [`switch`] to a new fiber needs no special case. `top` is the
//! high end of the stack, 16-byte aligned.
//!
//! ```text
//!  top ---------> +----------------------------+  (16-byte aligned)
//!       top - 8   | 0                          |  fake return address of the entry
//!                 |                            |  function: backtraces stop here
//!       top - 16  | fiber_start                |  "return address": the first
//!                 |                            |  switch jumps here
//!       top - 24  | rbp = 0                    |  end of the frame-pointer chain
//!       top - 32  | rbx = arg                  |  fiber_start moves it to rdi
//!       top - 40  | r12 = entry function       |  fiber_start jumps to it
//!       top - 48  | r13 = 0                    |
//!       top - 56  | r14 = 0                    |
//!       top - 64  | r15 = 0                    |
//!       top - 72  | x87 cw 0x037F | MXCSR 0x1F80 |  the ABI's initial values
//!  sp = top - 72  +----------------------------+
//! ```
//!
//! The first switch pops the control words and the six registers, then jumps
//! to `fiber_start` with `rsp = top - 8`. That is `rsp ≡ 8 (mod 16)`, exactly
//! what a function sees on entry after a `call` pushed its return address, so
//! `fiber_start` can jump (not call) into the entry function and the entry
//! function finds its "return address" (0) where it expects one.
//!
//! ## Why `switch` ends in `jmp`, not `ret`
//!
//! The CPU predicts where a `ret` goes with a small return stack buffer (RSB):
//! every `call` pushes its return address there, every `ret` pops one and
//! starts executing there before the real address is even loaded. A context
//! switch breaks that pairing: context A `call`s `switch`, and the `ret` at the
//! end goes to wherever *B* called `switch` from. The prediction is always
//! wrong, the CPU throws away the work it started on the wrong path, and that
//! costs about 20 cycles per switch. [`switch_naive`] does exactly that.
//!
//! [`switch`] instead pops the return address into a register and jumps to it.
//! An indirect `jmp` is predicted by the branch target predictor, which
//! remembers *which* target followed *which* path, and learns that after A's
//! loop comes B and after B's loop comes A. The RSB entry pushed by the `call`
//! is simply never used (it is a ring of a few dozen entries; old ones fall
//! off). For this to pay off, `yield_now` is `#[inline(always)]`, so the
//! `call switch` sits in the fiber's own code and, after resuming, the fiber
//! does not `ret` out of a helper (that `ret` would mispredict instead).

use core::arch::naked_asm;

pub mod inline;
pub mod preempt;

/// The function a new fiber starts in: it receives the `arg` given to
/// [`init_stack`] and must never return (it ends by switching away for good).
pub type FiberEntry = unsafe extern "sysv64" fn(arg: *mut u8) -> !;

/// `init_stack` needs the top of the stack aligned to this many bytes (the
/// ABI wants `rsp` 16-byte aligned at every `call`).
pub const STACK_ALIGNMENT: usize = 16;

/// Bytes [`init_stack`] writes below `top` (nine 8-byte words).
pub const INITIAL_FRAME_SIZE: usize = 9 * 8;

/// The ABI's initial MXCSR: all floating-point exceptions masked, round to
/// nearest, no flush-to-zero.
pub const DEFAULT_MXCSR: u32 = 0x1F80;

/// The ABI's initial x87 control word: exceptions masked, 64-bit precision,
/// round to nearest.
pub const DEFAULT_X87_CONTROL_WORD: u16 = 0x037F;

// ANCHOR: switch
/// Saves the running context and resumes another one.
///
/// Pushes the callee-saved registers and the floating-point control words on
/// the current stack, stores the resulting stack pointer in `*save_sp_into`,
/// then loads `resume_sp`, pops that context's registers and jumps to where
/// it left off. "Returns" only when some other context switches back to the
/// stack pointer stored in `*save_sp_into`.
///
/// # Safety
///
/// - `save_sp_into` must be valid for an 8-byte write, and the value written
///   there must be used at most once to resume this context, while the stack
///   it points into is still mapped and not otherwise in use.
/// - `resume_sp` must come from [`init_stack`] or from a previous `switch`'s
///   `*save_sp_into`, and that context must not have been resumed since.
/// - Every object alive on the stacks involved stays alive while suspended:
///   the caller must not free or reuse a suspended context's stack.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch(save_sp_into: *mut *mut u8, resume_sp: *mut u8) {
    naked_asm!(
        // On entry: rdi = save_sp_into, rsi = resume_sp, [rsp] = our return address.
        // The control words first: stmxcsr is the slowest instruction here, and
        // starting it first lets the CPU do the pushes meanwhile. They go where
        // the control-word slot will be after the pushes below (rsp - 56): the
        // 128 bytes below rsp are the ABI's "red zone", which no signal handler
        // may overwrite, so they are safe there until rsp comes down to them.
        "stmxcsr [rsp - 56]", // SSE control: rounding mode, flush-to-zero (callee-saved bits)
        "fnstcw [rsp - 52]",  // x87 control word: precision and rounding (callee-saved)
        "push rbp",           // the six registers the ABI says a callee must preserve:
        "push rbx",           // our caller expects them back unchanged when we "return",
        "push r12",           // so they go onto our own stack, next to the return address.
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",     // and the control words' slot, already written: rsp now points at it
        "mov eax, [rsp]", // keep our MXCSR and x87 control word in registers
        "movzx edx, word ptr [rsp + 4]", // to compare with the other context's below
        "mov [rdi], rsp", // our context is now just this stack pointer: publish it
        // From here on we run on the other context's stack.
        "mov rsp, rsi",      // the other stack pointer: its saved frame is right here
        "xor eax, [rsp]",    // are its control words the ones already loaded? Almost always
        "test eax, 0xFFC0",  // (few programs change them), and loading them costs more than
        "jnz 3f",            // the rest of the switch, so load only when they differ (at 3:).
        "cmp dx, [rsp + 4]", // MXCSR bits 0-5 are sticky status flags, which the ABI does not
        "jne 3f",            // preserve: only its control bits (0xFFC0) are compared
        "2:",
        "add rsp, 8", // drop the control-word slot
        "pop r15",    // its callee-saved registers, in reverse order of the pushes
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "pop rcx", // its return address (rcx is caller-saved: free to use)
        "jmp rcx", // an indirect jump, predicted by target history; not `ret` (see module docs)
        "3:",
        "ldmxcsr [rsp]",   // its MXCSR
        "fldcw [rsp + 4]", // its x87 control word
        "jmp 2b",
    )
}
// ANCHOR_END: switch

// ANCHOR: switch_naive
/// [`switch`] as most first attempts write it: identical, except that it
/// resumes the other context with `ret`.
///
/// Correct, but the `ret` always goes somewhere other than the return stack
/// buffer predicts (the other context's call site, not our caller's), so every
/// switch pays a misprediction. Kept for the bench.
///
/// # Safety
///
/// Exactly as for [`switch`]; the two save the same frame, so contexts saved
/// by one may be resumed by the other.
#[unsafe(naked)]
pub unsafe extern "sysv64" fn switch_naive(save_sp_into: *mut *mut u8, resume_sp: *mut u8) {
    naked_asm!(
        "stmxcsr [rsp - 56]", // save exactly what `switch` saves, in the same layout
        "fnstcw [rsp - 52]",
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "mov eax, [rsp]",
        "movzx edx, word ptr [rsp + 4]",
        "mov [rdi], rsp", // publish our stack pointer
        "mov rsp, rsi",   // and take the other one
        "xor eax, [rsp]", // load its control words only if they differ
        "test eax, 0xFFC0",
        "jnz 3f",
        "cmp dx, [rsp + 4]",
        "jne 3f",
        "2:",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret", // pops the other context's return address: the predictor guessed ours
        "3:",
        "ldmxcsr [rsp]",
        "fldcw [rsp + 4]",
        "jmp 2b",
    )
}
// ANCHOR_END: switch_naive

// ANCHOR: fiber_start
/// Where a new fiber's first switch lands (see the diagram in the module
/// docs). Not a function anyone calls: it is only ever jumped to, with the
/// registers [`init_stack`] prepared.
#[unsafe(naked)]
unsafe extern "sysv64" fn fiber_start() {
    naked_asm!(
        "mov rdi, rbx", // the argument, parked in rbx by init_stack: first argument register
        "jmp r12",      // the entry function. jmp, not call: [rsp] already holds its return address (0)
        "ud2",          // never reached: the entry function never returns
    )
}
// ANCHOR_END: fiber_start

// ANCHOR: init_stack
/// Writes the initial frame (see the module docs) just below `top` and
/// returns the stack pointer to pass to [`switch`] to start `entry(arg)`.
///
/// # Safety
///
/// `top` must be [`STACK_ALIGNMENT`]-aligned, the [`INITIAL_FRAME_SIZE`] bytes
/// below it must be writable and unused, and below them must be enough stack
/// for `entry` to run. `entry` must end by switching away for good (it cannot
/// return: its return address is 0).
pub unsafe fn init_stack(top: *mut u8, entry: FiberEntry, arg: *mut u8) -> *mut u8 {
    debug_assert_eq!(top as usize % STACK_ALIGNMENT, 0, "the stack top must be 16-byte aligned");
    let control_words = DEFAULT_MXCSR as u64 | (DEFAULT_X87_CONTROL_WORD as u64) << 32;
    // From the lowest address (the new stack pointer) up to `top`, in the order
    // `switch` pops them.
    let frame: [u64; 9] = [
        control_words,                            // MXCSR at +0, x87 control word at +4
        0,                                        // r15
        0,                                        // r14
        0,                                        // r13
        entry as usize as u64,                    // r12: fiber_start jumps here
        arg as usize as u64,                      // rbx: fiber_start passes it in rdi
        0,                                        // rbp: 0 ends the frame-pointer chain
        fiber_start as *const () as usize as u64, // where the first switch "returns" to
        0,                                        // the entry function's return address: none
    ];
    // SAFETY: the caller guarantees the 72 bytes below `top` are writable and
    // `top` is 16-byte (so 8-byte) aligned, hence so is `top - 72`.
    unsafe {
        let sp = top.sub(INITIAL_FRAME_SIZE).cast::<u64>();
        sp.copy_from_nonoverlapping(frame.as_ptr(), frame.len());
        sp.cast()
    }
}
// ANCHOR_END: init_stack
