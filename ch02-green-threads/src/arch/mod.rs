//! The CPU-specific part: saving one context's registers and resuming another.
//!
//! Every backend exposes the same names (there is one today):
//!
//! - [`switch`]: save the running context on its own stack, store its stack
//!   pointer, load another context's stack pointer and resume it;
//! - [`switch_naive`]: the same save and restore, but resuming with `ret`
//!   (kept so the bench can show why that is slow);
//! - [`init_stack`]: lay out a fresh stack so that the first [`switch`] to it
//!   starts a given function;
//! - [`FiberEntry`], [`STACK_ALIGNMENT`] and [`INITIAL_FRAME_SIZE`];
//! - [`inline`]: the "going faster" switch, inline assembly at the yield
//!   site (`inline::switch`, `inline::switch_saving_float_control`,
//!   `inline::init_stack`, `inline::initial_frame_size`), with frames of its
//!   own;
//! - [`preempt`]: asynchronous preemption's CPU half: `preempt::vector_state`,
//!   `preempt::interrupted_at`, `preempt::enter_trampoline` and the
//!   trampoline they send a fiber into.
//!
//! A context is nothing but a stack pointer: everything else it needs is
//! saved on its own stack.

// ANCHOR: select
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub use x86_64::*;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!(
    "ch02-green-threads supports x86-64 Linux only. The context switch is hand-written x86-64 assembly for the \
     System V calling convention (which registers a function must preserve), and stacks, guard pages and the \
     overflow report use Linux's mmap, mincore and signals. Another CPU needs its own arch/<cpu>.rs exposing the \
     same functions (aarch64 would save x19-x30, sp and d8-d15); Windows x86-64 also preserves xmm6-xmm15 and \
     keeps stack bounds in the thread information block."
);
// ANCHOR_END: select
