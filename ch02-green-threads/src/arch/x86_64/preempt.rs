//! Asynchronous preemption, the CPU's half: where a signal interrupted a
//! fiber, the rewrite of the registers the kernel saved for it, and the
//! trampoline the fiber runs when the signal handler returns.
//!
//! The signal handler never switches fibers itself: it runs on the
//! alternate signal stack, in the middle of whatever the fiber was doing,
//! and the next fiber would run in signal context. It only edits the
//! *saved* registers (the `ucontext` the kernel hands every `SA_SIGINFO`
//! handler), so that when the handler returns the fiber does not resume at
//! the interrupted instruction but calls the scheduler, as if it had
//! called `yield_now` there, and comes back to that instruction later with
//! every register as it was.
//!
//! ## The fiber's stack, before and after the rewrite
//!
//! ```text
//!  interrupted at rip = r, rsp = s          the trampoline, while the fiber is switched out
//!
//!  +-----------------------------+          +-----------------------------+
//!  | the fiber's frames          |          | the fiber's frames          |
//!  +-----------------------------+ <- s     +-----------------------------+ <- s
//!  | red zone: 128 bytes below   |          | red zone: untouched         |
//!  | rsp that a leaf function    |          |                             |
//!  | may use without moving rsp  |          |                             |
//!  +-----------------------------+ s - 128  +-----------------------------+ s - 128
//!  | free                        |          | r: where to return          | s - 136 <- rsp after the rewrite
//!  |                             |          | rflags                      |   (written by the handler)
//!  |                             |          | rax rcx rdx rsi rdi         |
//!  |                             |          | r8 r9 r10 r11               |
//!  |                             |          | rbp                         | s - 224 <- rbp
//!  |                             |          | (padding to 64 bytes)       |
//!  |                             |          | XSAVE area: x87, MXCSR,     |
//!  |                             |          | xmm, ymm, zmm, k registers  | <- rsp, 64-byte aligned
//!  |                             |          | preempted() -> yield_now()  |
//!  |                             |          | -> switch: its own frames   |
//! ```
//!
//! The handler writes one word, `r`, just below the red zone, and sets the
//! saved `rsp` to point at it and the saved `rip` to `trampoline`. To the
//! trampoline that looks like a call: a return address on top of the
//! stack. It ends with `ret 128`, which pops `r` into `rip` and then moves
//! `rsp` up by another 128 bytes, over the red zone: `rsp = s` again.
//!
//! ## What the trampoline must save
//!
//! The interrupted code did not call anything: it may hold a live value in
//! every register. The trampoline is about to call a function (the
//! scheduler's yield), and the calling convention lets a function destroy
//! the caller-saved registers, so those are the trampoline's to save. The
//! callee-saved ones the called function and the switch keep, as for any
//! call.
//!
//! | state | kept by | why |
//! |---|---|---|
//! | `rip` | the handler (the word `r`), `ret 128` | where to resume |
//! | `rsp` | `ret 128` | `s` is 136 bytes above the trampoline's return slot |
//! | `rflags` | `pushfq` / `popfq`, first and last | any instruction after the interrupted one may test a flag set before it |
//! | `rax`, `rcx`, `rdx`, `rsi`, `rdi`, `r8`-`r11` | `push` / `pop` | caller-saved: the call to the scheduler may destroy them |
//! | `rbx`, `rbp`, `r12`-`r15` | the call (`rbp` also pushed: the trampoline uses it) | callee-saved: the scheduler and the switch give them back |
//! | x87, MXCSR (all of it, status flags too), `xmm0`-`xmm15` | `xsave64` / `xrstor64` | caller-saved, and the interrupted code may be mid-computation in any of them |
//! | upper halves of `ymm0`-`ymm15`, `zmm0`-`zmm31`, `k0`-`k7` | `xsave64` / `xrstor64`, when the OS enabled them | the same, for code compiled with AVX or AVX-512 |
//!
//! ## `fxsave64` or `xsave64`
//!
//! `fxsave64` stores the 512-byte legacy area: the x87 registers, MXCSR
//! and `xmm0`-`xmm15`. It knows nothing of the upper 128 bits of the `ymm`
//! registers, of `zmm`, or of the AVX-512 mask registers. Code compiled for
//! the default x86-64 target never uses them, but a leaf function with
//! `#[target_feature(enable = "avx2")]`, or a build with
//! `-C target-cpu=native`, does: exactly the pure number crunching the
//! preemptible section is for. Meanwhile the other fibers run code that
//! uses them too (glibc's `memcpy` and `strlen` pick AVX2 or AVX-512
//! versions at load time on CPUs that have them). With `fxsave64`, such a
//! fiber would resume with another fiber's upper halves.
//!
//! So the trampoline uses `xsave64` with the state components the OS has
//! enabled (register XCR0, read with `xgetbv`), which is what the kernel
//! itself saves on the signal frame. The area's size comes from `cpuid`
//! (leaf 0xD): 2432 bytes for AVX-512, 832 for AVX, 576 without. Two
//! components are left out: PKRU (memory protection keys: a per-thread
//! setting, not a computation's state) and the AMX tiles (8 KiB, and only
//! a process that asked the kernel for them may touch them).

use core::arch::naked_asm;
use std::ffi::c_void;
use std::io;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The System V ABI's red zone: the 128 bytes below `rsp` that a function
/// may use without moving `rsp`, and that no signal handler may touch.
pub const RED_ZONE: usize = 128;

/// Bytes the trampoline pushes below the red zone before its XSAVE area:
/// the return slot, the flags, nine caller-saved registers and `rbp`.
pub const TRAMPOLINE_PUSHES: usize = 12 * 8;

/// XSAVE state components the trampoline leaves out: PKRU (bit 9, memory
/// protection keys) and the AMX tile configuration and data (bits 17, 18).
const LEFT_OUT: u64 = 1 << 9 | 1 << 17 | 1 << 18;

/// The XSAVE area before any optional component: the 512-byte legacy area
/// (x87, MXCSR, `xmm0`-`xmm15`) and the 64-byte XSAVE header.
const LEGACY_AND_HEADER: usize = 512 + 64;

/// The state components the trampoline saves (the `edx:eax` operand of
/// `xsave64` and `xrstor64`). Read by the trampoline; written once, by
/// [`vector_state`], before any runtime can preempt.
static XSAVE_MASK: AtomicU64 = AtomicU64::new(0);
/// The size of the trampoline's XSAVE area, a multiple of 64. Likewise.
static XSAVE_BYTES: AtomicU64 = AtomicU64::new(0);

// ANCHOR: vector_state
/// The vector state the trampoline saves on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorState {
    /// The XSAVE state components: bit 0 x87, 1 SSE (`xmm`, MXCSR), 2 AVX
    /// (upper halves of `ymm`), 5-7 AVX-512 (`k0`-`k7`, upper halves of
    /// `zmm0`-`zmm15`, `zmm16`-`zmm31`).
    pub components: u64,
    /// The bytes of the XSAVE area for them (a multiple of 64).
    pub bytes: usize,
}

/// Finds out which vector state this CPU and OS have (once) and gets the
/// trampoline ready to save it. `Unsupported` if the OS has not enabled
/// XSAVE (every x86-64 Linux on a CPU since about 2011 has), or if the
/// state would not fit under a page with the trampoline's pushes (so that
/// the trampoline cannot step over a guard page; 2432 bytes with AVX-512).
pub fn vector_state() -> io::Result<VectorState> {
    static STATE: OnceLock<Option<VectorState>> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        // CPUID leaf 1, ECX bit 27 (OSXSAVE): the OS has turned XSAVE on, so
        // XCR0 says which state components it manages.
        if std::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
            return None;
        }
        let components = xcr0() & !LEFT_OUT;
        // Leaf 0xD, sub-leaf i: component i's size (EAX) and offset (EBX)
        // in the standard-format area. Components 0 and 1 live in the legacy area.
        let end_of = |i: u32| {
            let leaf = std::arch::x86_64::__cpuid_count(0xD, i);
            (leaf.ebx + leaf.eax) as usize
        };
        let bytes = (2..63)
            .filter(|&i| components & 1 << i != 0)
            .map(end_of)
            .fold(LEGACY_AND_HEADER, usize::max)
            .next_multiple_of(64);
        // With the pushes, the area stays under a page: the trampoline's
        // writes cannot step over a fiber's guard page without touching it.
        if bytes + TRAMPOLINE_PUSHES + 64 >= 4096 {
            return None;
        }
        XSAVE_MASK.store(components, Ordering::Relaxed);
        XSAVE_BYTES.store(bytes as u64, Ordering::Relaxed);
        Some(VectorState { components, bytes })
    });
    state.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "asynchronous preemption needs XSAVE enabled by the OS (CPUID.1:ECX.OSXSAVE) and a vector state that \
             fits in under a page with the trampoline's frame",
        )
    })
}
// ANCHOR_END: vector_state

/// Extended control register 0: the state components the OS manages.
fn xcr0() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `xgetbv` with ecx = 0 reads XCR0; it is allowed in user mode
    // once the OS has enabled XSAVE (checked by the caller through OSXSAVE).
    // It touches no memory, no stack and no flags.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags))
    };
    u64::from(high) << 32 | u64::from(low)
}

// ANCHOR: interrupted_at
/// Where the code a signal interrupted was: `(rip, rsp)` as the kernel
/// saved them for the handler.
///
/// # Safety
///
/// `ucontext` must be the third argument the kernel passed to an
/// `SA_SIGINFO` signal handler that is still running.
pub unsafe fn interrupted_at(ucontext: *const c_void) -> (usize, usize) {
    // SAFETY: the caller passes the kernel's ucontext_t, valid while the
    // handler runs; we only read two saved registers.
    let registers = unsafe { &(*ucontext.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    (registers[libc::REG_RIP as usize] as usize, registers[libc::REG_RSP as usize] as usize)
}
// ANCHOR_END: interrupted_at

// ANCHOR: enter_trampoline
/// Rewrites the saved registers so that, when the signal handler returns,
/// the interrupted code runs `trampoline` instead of its next instruction
/// (see the module docs for the stack before and after). Returns `false`,
/// changing nothing, if the return slot would not lie in `stack`.
///
/// # Safety
///
/// - `ucontext` as for [`interrupted_at`], and the handler returns normally
///   (no `longjmp`), so the kernel resumes from the rewritten registers.
/// - `stack` is the stack the interrupted code runs on, mapped and writable,
///   whose bytes below the red zone hold nothing alive (true of any stack
///   the System V ABI governs: below `rsp - 128` is free for anyone).
/// - The interrupted code may be called away from at any instruction: it
///   holds no lock and is in the middle of no update another fiber could see
///   (the preemptible section's rules, see `crate::preempt`). [`vector_state`]
///   has succeeded.
pub unsafe fn enter_trampoline(ucontext: *mut c_void, stack: Range<usize>) -> bool {
    // SAFETY: as in `interrupted_at`; this handler is the only code running
    // on this thread, so nothing else reads or writes the saved registers.
    let registers = unsafe { &mut (*ucontext.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
    let (rip, rsp) = (registers[libc::REG_RIP as usize], registers[libc::REG_RSP as usize] as usize);
    // The return slot: the first word below the red zone.
    let Some(slot) = rsp.checked_sub(RED_ZONE + 8) else { return false };
    if slot < stack.start || rsp > stack.end {
        return false;
    }
    // SAFETY: `slot` lies in `stack` (checked above), below the red zone, so
    // nothing alive is there; it is 8-byte aligned when rsp is (always, in
    // compiled code; x86-64 allows an unaligned write otherwise).
    unsafe { (slot as *mut i64).write_unaligned(rip) };
    registers[libc::REG_RSP as usize] = slot as i64;
    registers[libc::REG_RIP as usize] = trampoline as *const () as usize as i64;
    true
}
// ANCHOR_END: enter_trampoline

// ANCHOR: trampoline
/// Where a preempted fiber goes when the signal handler returns: saves
/// everything the interrupted code may have live, calls
/// [`crate::preempt::preempted`] (which yields), restores everything and
/// returns to the interrupted instruction. Only ever entered through
/// [`enter_trampoline`]'s rewrite, never called.
///
/// # Safety
///
/// Only to be entered as [`enter_trampoline`] arranges: `[rsp]` holds the
/// interrupted `rip`, the interrupted `rsp` is `rsp + 136`, every other
/// register holds the interrupted code's value, and that code may be
/// switched away from (the preemptible section's rules).
#[unsafe(naked)]
unsafe extern "sysv64" fn trampoline() {
    naked_asm!(
        // On entry: [rsp] = the interrupted rip; rsp = its rsp - 136. Every
        // other register holds what the interrupted code left in it.
        "pushfq",                                 // the flags first: most instructions below change them
        "push rax",                               // the nine caller-saved registers: the call below may
        "push rcx",                               //   destroy them, and the interrupted code (which
        "push rdx",                               //   called nothing) may hold a live value in any of
        "push rsi",                               //   them
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbp",                               // callee-saved, but we use it: the way back to this frame
        "mov rbp, rsp",                           // after rsp is aligned below
        "sub rsp, qword ptr [rip + {bytes}]",     // room for the vector state (its size from cpuid)
        "and rsp, -64",                           // xsave64 wants its area 64-byte aligned
        "xor eax, eax",                           // the XSAVE header (64 bytes at +512) must be zero
        "mov qword ptr [rsp + 512], rax",         // before xsave64: xrstor64 faults on reserved bits,
        "mov qword ptr [rsp + 520], rax",         //   and this stack memory holds old frames
        "mov qword ptr [rsp + 528], rax",         //   (eight words of zero)
        "mov qword ptr [rsp + 536], rax",
        "mov qword ptr [rsp + 544], rax",
        "mov qword ptr [rsp + 552], rax",
        "mov qword ptr [rsp + 560], rax",
        "mov qword ptr [rsp + 568], rax",         //   the header's last word
        "mov eax, dword ptr [rip + {mask}]",      // which components to save: edx:eax,
        "mov edx, dword ptr [rip + {mask} + 4]",  //   the ones the OS enabled (XCR0)
        "xsave64 [rsp]",                          // x87, MXCSR, xmm, and ymm/zmm/k where enabled
        "cld",                                    // a call needs the direction flag clear; the interrupted
                                                  //   code may have set it (saved with the flags)
        "call {preempted}",                       // rsp is 64-byte aligned, so 16 as a call needs: yield
        "mov eax, dword ptr [rip + {mask}]",      // back, perhaps much later: the same components
        "mov edx, dword ptr [rip + {mask} + 4]",  //   (eax and edx were free to change in the call)
        "xrstor64 [rsp]",                         // every vector register and MXCSR as they were
        "mov rsp, rbp",                           // undo the alignment: back to the pushed registers
        "pop rbp",                                // the interrupted code's rbp
        "pop r11",                                // the caller-saved registers, in reverse order
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",                                //   the first one pushed
        "popfq",                                  // the interrupted code's flags, DF included
        "ret 128",                                // pop rip, then rsp += 128: over the red zone, back
                                                  //   to the interrupted instruction and its rsp
        bytes = sym XSAVE_BYTES,
        mask = sym XSAVE_MASK,
        preempted = sym crate::preempt::preempted,
    )
}
// ANCHOR_END: trampoline

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_holds_at_least_the_legacy_state_and_is_a_whole_number_of_cache_lines() -> io::Result<()> {
        let state = vector_state()?;
        // x87 and SSE are always there on x86-64.
        assert_eq!(state.components & 0b11, 0b11, "{state:x?}");
        assert_eq!(state.components & LEFT_OUT, 0);
        assert!(state.bytes >= LEGACY_AND_HEADER && state.bytes.is_multiple_of(64), "{state:?}");
        // AVX state lives at offset 576 for 256 bytes on every CPU that has it.
        if state.components & 1 << 2 != 0 {
            assert!(state.bytes >= 832, "{state:?}");
        }
        // Smaller than a page: with the pushes, the trampoline cannot step
        // over a fiber's guard page without touching it.
        assert!(state.bytes + TRAMPOLINE_PUSHES + 64 < 4096, "{state:?}");
        Ok(())
    }
}
