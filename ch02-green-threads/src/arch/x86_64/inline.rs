//! Going faster: the switch as inline assembly in the yield itself.
//!
//! [`super::switch`] is a function every fiber calls. Being a function costs
//! three things on every switch, and this module removes them:
//!
//! 1. **It saves all six callee-saved registers**, because it cannot know
//!    which of them the caller still needs. Written as an `asm!` block with a
//!    *clobber list* instead, the switch tells the compiler "r12 to r15 come
//!    back as garbage", and the compiler saves only those that hold a live
//!    value at this yield, once per function rather than once per switch.
//!    `rbx` and `rbp` cannot be declared clobbered (LLVM reserves them), so
//!    the asm pushes those two itself.
//! 2. **It reads MXCSR and the x87 control word.** `stmxcsr` is slow, and
//!    most programs never change either word. Here saving them is a choice
//!    (`Switch::Inline { save_float_control }` in the runtime's `Config`),
//!    off by default: without it the two words belong to the thread, not to
//!    each fiber, so a fiber that changes the rounding mode changes it for
//!    every fiber. Boost.Context makes the same choice with its
//!    `preserve_fpu` flag; corosensei never saves them.
//! 3. **Its `call` is never matched by a `ret`** (the switch leaves with a
//!    `jmp`), so the CPU's return stack buffer drifts out of step with the
//!    real stack, and a `ret` further up the fiber's own calls can
//!    mispredict. An `asm!` block inside the caller's code needs no call at
//!    all: every call and return around it stays paired, and predicted.
//!
//! ## A suspended context's stack
//!
//! Each side pushes a *resume address*: label `2:` of its own `asm!` block,
//! where it continues when someone switches back. Everything below that
//! address is private to the block that pushed it, so resuming is the same
//! for every context: load its stack pointer, pop the address, jump.
//!
//! ```text
//!  higher addresses
//!  +-------------------------+
//!  | ...  the context's own  |
//!  |      frames             |
//!  +-------------------------+
//!  | rbp                     |
//!  | rbx                     |
//!  +------------+------------+
//!  | x87 cw (2) | MXCSR (4)  |  only in switch_saving_float_control
//!  +------------+------------+
//!  | resume address          |  label 2: of the asm block that suspended
//!  +-------------------------+  <- saved stack pointer
//!  lower addresses
//! ```
//!
//! The registers the compiler saved for the clobber list sit higher up, in
//! the frame of the function the yield was inlined into, where the compiler
//! put them.
//!
//! ## The initial stack of a new fiber
//!
//! [`init_stack`] makes a frame that looks like a suspended context whose
//! resume address is a small start function: [`fiber_start`], or
//! [`fiber_start_saving_float_control`], which first loads the ABI's initial
//! control words from the frame (a fiber that keeps its own words starts with
//! the defaults, as one started by [`super::init_stack`] does).
//!
//! ```text
//!  top ---------> +-----------------------------+  (16-byte aligned)
//!       top - 8   | 0                           |  fake return address of the entry function
//!       top - 16  | arg                         |  fiber_start pops it into rdi
//!       top - 24  | entry function              |  fiber_start pops it and jumps to it
//!      (top - 32  | x87 cw 0x037F | MXCSR 0x1F80 |  only when saving the control words)
//!                 | fiber_start(...)            |  the "resume address" the first switch pops
//!  sp ----------> +-----------------------------+
//! ```
//!
//! The entry function is entered with `rsp = top - 8`, `[rsp] = 0`: exactly
//! what a function sees after a `call`, as in the teaching switch.
//!
//! ## Why the two switches cannot meet
//!
//! A context suspended by [`super::switch`] has six registers and the control
//! words on its stack; one suspended here has two registers and a resume
//! address. Neither can resume the other, so a runtime uses one kind for all
//! its fibers (the runtime's `Config::switch`).

use core::arch::{asm, naked_asm};

use super::{DEFAULT_MXCSR, DEFAULT_X87_CONTROL_WORD, FiberEntry, STACK_ALIGNMENT};

/// Bytes [`init_stack`] writes below `top`: four 8-byte words, or five when
/// the fiber keeps its own control words.
pub const fn initial_frame_size(save_float_control: bool) -> usize {
    if save_float_control { 5 * 8 } else { 4 * 8 }
}

// ANCHOR: inline_switch
/// Saves the running context and resumes another, as inline assembly at the
/// call site. The floating-point control words are left alone: they stay as
/// the thread has them.
///
/// # Safety
///
/// As for [`super::switch`]: `save_sp_into` valid for an 8-byte write, and
/// the value written there used at most once to resume this context;
/// `resume_sp` from [`init_stack`] or from an earlier switch of *this*
/// module (never from [`super::switch`]: the frames differ) with
/// `save_float_control` off, not resumed since; every stack involved stays
/// mapped while its context is suspended.
#[inline(always)]
pub unsafe fn switch(save_sp_into: *mut *mut u8, resume_sp: *mut u8) {
    // SAFETY: the caller vouches for both stack pointers. The block hands
    // back everything the compiler may rely on: rbx and rbp are pushed and
    // popped; rsp is what it was, since we come back only through label 2
    // with our own stack pointer, above the three words we pushed; r12-r15
    // and every caller-saved register are declared clobbered, so the
    // compiler keeps nothing it needs in them. It uses the stack (no
    // `nostack`), so the compiler keeps nothing in the red zone below rsp.
    unsafe {
        asm!(
            "push rbp",             // the two registers we may not declare clobbered
            "push rbx",
            "lea rax, [rip + 2f]",  // where we continue when resumed:
            "push rax",             // the resume address, on top of our frame
            "mov [rdi], rsp",       // our context is now just this stack pointer
            "mov rsp, rsi",         // from here on we run on the other stack
            "pop rax",              // its resume address
            "jmp rax",              // an indirect jump, predicted by this site's history
            "2:",                   // someone switched back to us
            "pop rbx",
            "pop rbp",
            in("rdi") save_sp_into,
            in("rsi") resume_sp,
            // Returned as garbage: the compiler saves them where it needs
            // them, and only those that hold something at this yield.
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
}
// ANCHOR_END: inline_switch

// ANCHOR: inline_switch_float
/// [`switch`], also saving MXCSR and the x87 control word on the way out and
/// loading them on the way back in: each fiber keeps its own rounding mode
/// and exception masks (what the System V ABI asks of a called function).
///
/// # Safety
///
/// As for [`switch`], with contexts made by [`init_stack`] with
/// `save_float_control` on, or suspended by this function.
#[inline(always)]
pub unsafe fn switch_saving_float_control(save_sp_into: *mut *mut u8, resume_sp: *mut u8) {
    // SAFETY: as in `switch`; in addition the control words are put back
    // (from our own frame) before the block ends.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "sub rsp, 8",           // a slot for the two control words:
            "stmxcsr [rsp]",        // SSE control: rounding, flush-to-zero, exception masks
            "fnstcw [rsp + 4]",     // x87 control word: precision and rounding
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [rdi], rsp",
            "mov rsp, rsi",
            "pop rax",
            "jmp rax",
            "2:",
            "ldmxcsr [rsp]",        // ours back, whatever the other fiber left
            "fldcw [rsp + 4]",
            "add rsp, 8",
            "pop rbx",
            "pop rbp",
            in("rdi") save_sp_into,
            in("rsi") resume_sp,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
}
// ANCHOR_END: inline_switch_float

// ANCHOR: inline_fiber_start
/// Where a new fiber's first switch lands (the "resume address" in the frame
/// [`init_stack`] writes): pops the entry function and its argument, and
/// jumps to it. Only ever jumped to.
#[unsafe(naked)]
unsafe extern "sysv64" fn fiber_start() {
    naked_asm!(
        "pop rax", // the entry function
        "pop rdi", // its argument, in the first argument register
        "jmp rax", // rsp = top - 8, where its fake return address (0) is
        "ud2",     // never reached
    )
}

/// [`fiber_start`] for a fiber that keeps its own control words: loads the
/// ABI's initial ones from the frame first.
#[unsafe(naked)]
unsafe extern "sysv64" fn fiber_start_saving_float_control() {
    naked_asm!(
        "ldmxcsr [rsp]",   // the initial MXCSR
        "fldcw [rsp + 4]", // the initial x87 control word
        "add rsp, 8",
        "pop rax",
        "pop rdi",
        "jmp rax",
        "ud2",
    )
}
// ANCHOR_END: inline_fiber_start

// ANCHOR: inline_init_stack
/// Writes the initial frame (see the module docs) just below `top` and
/// returns the stack pointer that the switches of this module resume to
/// start `entry(arg)`. `save_float_control` must match the switch that will
/// resume it.
///
/// # Safety
///
/// `top` must be [`STACK_ALIGNMENT`]-aligned, the
/// [`initial_frame_size`]`(save_float_control)` bytes below it writable and
/// unused, and below them enough stack for `entry` to run. `entry` must end
/// by switching away for good.
pub unsafe fn init_stack(top: *mut u8, entry: FiberEntry, arg: *mut u8, save_float_control: bool) -> *mut u8 {
    debug_assert_eq!(top as usize % STACK_ALIGNMENT, 0, "the stack top must be 16-byte aligned");
    let control_words = DEFAULT_MXCSR as u64 | (DEFAULT_X87_CONTROL_WORD as u64) << 32;
    let start = |f: unsafe extern "sysv64" fn()| f as *const () as usize as u64;
    // From the new stack pointer up to `top`.
    let with_words =
        [start(fiber_start_saving_float_control), control_words, entry as usize as u64, arg as usize as u64, 0];
    let without = [start(fiber_start), entry as usize as u64, arg as usize as u64, 0];
    let frame: &[u64] = if save_float_control { &with_words } else { &without };
    // SAFETY: the caller guarantees the bytes below `top` are writable, and
    // `top` is 16-byte (so 8-byte) aligned, hence so is the frame's start.
    unsafe {
        let sp = top.sub(initial_frame_size(save_float_control)).cast::<u64>();
        sp.copy_from_nonoverlapping(frame.as_ptr(), frame.len());
        sp.cast()
    }
}
// ANCHOR_END: inline_init_stack
