//! Every register the preemption trampoline must keep survives thousands
//! of asynchronous preemptions: the general-purpose registers, the flags,
//! MXCSR (status flags included), `xmm0`-`xmm15`, and where the CPU has
//! them the upper halves of `ymm0`-`ymm15`, `zmm0`-`zmm31` and `k0`-`k7`;
//! and the 128-byte red zone below the stack pointer stays untouched.
//!
//! Like `tests/registers.rs` for the switch, the values sit in the
//! registers themselves, loaded from assembly: no compiled Rust code runs
//! between loading and reading them that could save and restore a
//! register on the trampoline's behalf. The checker is a naked function in
//! the preemptible section. It loads every register, then loops on one
//! instruction that touches no register and no flag (`jmp` through a
//! memory word), so the timer can only ever catch it there or in its own
//! straight-line code. A partner fiber runs each time the checker is
//! preempted: it fills every register with garbage and yields back. After
//! the partner has run a few thousand times it points the loop's word at
//! the checker's exit, which reads every register back.
//!
//! One `#[test]`: the checker's loop word is a static, shared by whatever
//! runs it, so the runs go one after the other.

use std::arch::{asm, naked_asm};
use std::io;
use std::mem::offset_of;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ch02_green_threads::arch::preempt::vector_state;
use ch02_green_threads::{Config, Preempt, Switch, run, spawn, stats, yield_now};

/// Preemptions of the checker per run.
const PREEMPTIONS: u64 = 2000;

/// A short quantum: the runs take PREEMPTIONS quanta each.
const QUANTUM: Duration = Duration::from_micros(50);

/// Every kind of switch: the trampoline calls the scheduler's yield, which
/// switches with the runtime's kind.
const SWITCHES: [Switch; 3] = [Switch::Call, Switch::INLINE, Switch::Inline { save_float_control: true }];

/// Which vector registers a run loads: the SSE ones, AVX's, or AVX-512's.
const SSE: u64 = 0;
const AVX: u64 = 1;
const AVX512: u64 = 2;

/// The flags the checker holds: CF, PF, AF, ZF, SF, DF and OF set (the
/// direction flag too, which the trampoline must clear before it calls
/// Rust and set again after). Bit 1 always reads 1.
const FLAGS: u64 = 0x0CD5 | 0x2;
/// The flags a program can set and we compare.
const FLAGS_COMPARED: u64 = 0x0CD5;

/// The checker's MXCSR: flush-to-zero, round toward zero, all exceptions
/// masked, and three sticky status flags set (invalid, divide-by-zero,
/// precision), which only a complete save keeps.
const MXCSR: u64 = 0xFFA5;

/// The MXCSR the partner loads before it yields: round up, other status flags.
static GARBAGE_MXCSR: u32 = 0x5F92;

/// Where the checker's loop jumps: its own loop until the partner is done.
static TARGET: AtomicUsize = AtomicUsize::new(0);
/// The address of the checker's exit, for the partner to put in `TARGET`.
static EXIT: AtomicUsize = AtomicUsize::new(0);
/// Set by the checker when its registers are loaded and it loops.
static LOOPING: AtomicBool = AtomicBool::new(false);

/// What the checker loads, and later what it read back.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, r8-r15 (every one but rsp).
    gpr: [u64; 15],
    rflags: u64,
    /// Low 32 bits.
    mxcsr: u64,
    /// The 16 words below the stack pointer, word 0 just below it.
    red_zone: [u64; 16],
    /// k0-k7 (16 bits each: `kmovw`, the AVX-512F form).
    k: [u64; 8],
    /// zmm0-zmm31, 64 bytes each; SSE uses the low 16 bytes of the first
    /// 16, AVX the low 32.
    vector: [[u64; 8]; 32],
}

const _: () = assert!(offset_of!(State, gpr) == 0);

/// The names of `State::gpr`, in order.
const GPR_NAMES: [&str; 15] =
    ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

impl State {
    /// Distinct values everywhere.
    fn pattern() -> State {
        let word = |n: u64| 0x0101_0101_0101_0101u64.wrapping_mul(n).rotate_left(n as u32);
        State {
            gpr: std::array::from_fn(|i| word(i as u64 + 1)),
            rflags: FLAGS,
            mxcsr: MXCSR,
            red_zone: std::array::from_fn(|i| word(i as u64 + 100)),
            k: std::array::from_fn(|i| 0x1234 + 0x1111 * i as u64),
            vector: std::array::from_fn(|i| std::array::from_fn(|j| word(200 + 8 * i as u64 + j as u64))),
        }
    }

    fn zeroed() -> State {
        State { gpr: [0; 15], rflags: 0, mxcsr: 0, red_zone: [0; 16], k: [0; 8], vector: [[0; 8]; 32] }
    }
}

/// The differences between what was loaded and what came back, for the
/// registers `level` uses, one line each.
fn differences(want: &State, got: &State, level: u64) -> Vec<String> {
    let mut found = Vec::new();
    for (i, name) in GPR_NAMES.iter().enumerate() {
        if want.gpr[i] != got.gpr[i] {
            found.push(format!("{name}: loaded {:#018x}, read back {:#018x}", want.gpr[i], got.gpr[i]));
        }
    }
    if want.rflags & FLAGS_COMPARED != got.rflags & FLAGS_COMPARED {
        found.push(format!("rflags: loaded {:#06x}, read back {:#06x}", want.rflags, got.rflags & FLAGS_COMPARED));
    }
    if want.mxcsr != got.mxcsr {
        found.push(format!("MXCSR: loaded {:#06x}, read back {:#06x}", want.mxcsr, got.mxcsr));
    }
    for (i, (w, g)) in want.red_zone.iter().zip(&got.red_zone).enumerate() {
        if w != g {
            found.push(format!("red zone word {i} (rsp - {}): written {w:#018x}, read back {g:#018x}", 8 + 8 * i));
        }
    }
    let (registers, words, name) = match level {
        SSE => (16, 2, "xmm"),
        AVX => (16, 4, "ymm"),
        _ => (32, 8, "zmm"),
    };
    for i in 0..registers {
        if want.vector[i][..words] != got.vector[i][..words] {
            found.push(format!(
                "{name}{i}: loaded {:x?}, read back {:x?}",
                &want.vector[i][..words],
                &got.vector[i][..words]
            ));
        }
    }
    if level == AVX512 {
        for i in 0..8 {
            if want.k[i] != got.k[i] & 0xFFFF {
                found.push(format!("k{i}: loaded {:#06x}, read back {:#06x}", want.k[i], got.k[i]));
            }
        }
    }
    found
}

/// Loads `want` into the registers (the vector ones `level` names), loops
/// until the partner points `TARGET` at the exit, and stores what the
/// registers hold then into `got`.
///
/// # Safety
///
/// `want` and `got` valid for a `State` each; `level` no higher than what
/// the CPU and OS support; `TARGET` pointed at the exit by someone else
/// while it loops (it never returns otherwise).
#[unsafe(link_section = "preempt_text")] // the whole checker may be preempted at any instruction
#[unsafe(naked)]
unsafe extern "sysv64" fn checker(want: *const State, got: *mut State, level: u64) {
    naked_asm!(
        "push rbx",                                 // the caller's callee-saved registers: we load all of them
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rsi",                                 // `got`, for the end
        "push rdx",                                 // `level`, for the end
        "sub rsp, 16",                              // a slot for the caller's MXCSR
        "stmxcsr [rsp]",                            // rsp is now rsp_loop: [+0] MXCSR, [+16] level, [+24] got
        "lea rax, [rip + 2f]",                      // the loop jumps through {target}: at 2: (here) until the
        "mov [rip + {target}], rax",                // partner points it at 3: (the end), whose address it
        "lea rax, [rip + 3f]",                      // finds in {exit}
        "mov [rip + {exit}], rax",
        "cmp rdx, 1",                               // which vector registers: the level the CPU has
        "jae 40f",
        "movdqu xmm0, [rdi + {vector} + 0]",        // SSE: xmm0-xmm15
        "movdqu xmm1, [rdi + {vector} + 64]",
        "movdqu xmm2, [rdi + {vector} + 128]",
        "movdqu xmm3, [rdi + {vector} + 192]",
        "movdqu xmm4, [rdi + {vector} + 256]",
        "movdqu xmm5, [rdi + {vector} + 320]",
        "movdqu xmm6, [rdi + {vector} + 384]",
        "movdqu xmm7, [rdi + {vector} + 448]",
        "movdqu xmm8, [rdi + {vector} + 512]",
        "movdqu xmm9, [rdi + {vector} + 576]",
        "movdqu xmm10, [rdi + {vector} + 640]",
        "movdqu xmm11, [rdi + {vector} + 704]",
        "movdqu xmm12, [rdi + {vector} + 768]",
        "movdqu xmm13, [rdi + {vector} + 832]",
        "movdqu xmm14, [rdi + {vector} + 896]",
        "movdqu xmm15, [rdi + {vector} + 960]",
        "jmp 42f",
        "40:",
        "cmp rdx, 2",
        "jae 41f",
        "vmovdqu ymm0, [rdi + {vector} + 0]",       // AVX: ymm0-ymm15, upper halves included
        "vmovdqu ymm1, [rdi + {vector} + 64]",
        "vmovdqu ymm2, [rdi + {vector} + 128]",
        "vmovdqu ymm3, [rdi + {vector} + 192]",
        "vmovdqu ymm4, [rdi + {vector} + 256]",
        "vmovdqu ymm5, [rdi + {vector} + 320]",
        "vmovdqu ymm6, [rdi + {vector} + 384]",
        "vmovdqu ymm7, [rdi + {vector} + 448]",
        "vmovdqu ymm8, [rdi + {vector} + 512]",
        "vmovdqu ymm9, [rdi + {vector} + 576]",
        "vmovdqu ymm10, [rdi + {vector} + 640]",
        "vmovdqu ymm11, [rdi + {vector} + 704]",
        "vmovdqu ymm12, [rdi + {vector} + 768]",
        "vmovdqu ymm13, [rdi + {vector} + 832]",
        "vmovdqu ymm14, [rdi + {vector} + 896]",
        "vmovdqu ymm15, [rdi + {vector} + 960]",
        "jmp 42f",
        "41:",
        "vmovdqu64 zmm0, [rdi + {vector} + 0]",     // AVX-512: zmm0-zmm31
        "vmovdqu64 zmm1, [rdi + {vector} + 64]",
        "vmovdqu64 zmm2, [rdi + {vector} + 128]",
        "vmovdqu64 zmm3, [rdi + {vector} + 192]",
        "vmovdqu64 zmm4, [rdi + {vector} + 256]",
        "vmovdqu64 zmm5, [rdi + {vector} + 320]",
        "vmovdqu64 zmm6, [rdi + {vector} + 384]",
        "vmovdqu64 zmm7, [rdi + {vector} + 448]",
        "vmovdqu64 zmm8, [rdi + {vector} + 512]",
        "vmovdqu64 zmm9, [rdi + {vector} + 576]",
        "vmovdqu64 zmm10, [rdi + {vector} + 640]",
        "vmovdqu64 zmm11, [rdi + {vector} + 704]",
        "vmovdqu64 zmm12, [rdi + {vector} + 768]",
        "vmovdqu64 zmm13, [rdi + {vector} + 832]",
        "vmovdqu64 zmm14, [rdi + {vector} + 896]",
        "vmovdqu64 zmm15, [rdi + {vector} + 960]",
        "vmovdqu64 zmm16, [rdi + {vector} + 1024]",
        "vmovdqu64 zmm17, [rdi + {vector} + 1088]",
        "vmovdqu64 zmm18, [rdi + {vector} + 1152]",
        "vmovdqu64 zmm19, [rdi + {vector} + 1216]",
        "vmovdqu64 zmm20, [rdi + {vector} + 1280]",
        "vmovdqu64 zmm21, [rdi + {vector} + 1344]",
        "vmovdqu64 zmm22, [rdi + {vector} + 1408]",
        "vmovdqu64 zmm23, [rdi + {vector} + 1472]",
        "vmovdqu64 zmm24, [rdi + {vector} + 1536]",
        "vmovdqu64 zmm25, [rdi + {vector} + 1600]",
        "vmovdqu64 zmm26, [rdi + {vector} + 1664]",
        "vmovdqu64 zmm27, [rdi + {vector} + 1728]",
        "vmovdqu64 zmm28, [rdi + {vector} + 1792]",
        "vmovdqu64 zmm29, [rdi + {vector} + 1856]",
        "vmovdqu64 zmm30, [rdi + {vector} + 1920]",
        "vmovdqu64 zmm31, [rdi + {vector} + 1984]",
        "kmovw k0, [rdi + {k} + 0]",                // and the mask registers k0-k7
        "kmovw k1, [rdi + {k} + 8]",
        "kmovw k2, [rdi + {k} + 16]",
        "kmovw k3, [rdi + {k} + 24]",
        "kmovw k4, [rdi + {k} + 32]",
        "kmovw k5, [rdi + {k} + 40]",
        "kmovw k6, [rdi + {k} + 48]",
        "kmovw k7, [rdi + {k} + 56]",
        "42:",
        "ldmxcsr [rdi + {mxcsr}]",                  // MXCSR: rounding, flush-to-zero, and status flags set
        "push qword ptr [rdi + {rflags}]",          // the flags (DF among them): from here on no
        "popfq",                                    // instruction may change a flag; mov and jmp do not
        "mov rax, [rdi + {red_zone} + 0]",          // the red zone: 16 words below rsp, which
        "mov [rsp - 8], rax",
        "mov rax, [rdi + {red_zone} + 8]",          // a preemption must not touch
        "mov [rsp - 16], rax",
        "mov rax, [rdi + {red_zone} + 16]",
        "mov [rsp - 24], rax",
        "mov rax, [rdi + {red_zone} + 24]",
        "mov [rsp - 32], rax",
        "mov rax, [rdi + {red_zone} + 32]",
        "mov [rsp - 40], rax",
        "mov rax, [rdi + {red_zone} + 40]",
        "mov [rsp - 48], rax",
        "mov rax, [rdi + {red_zone} + 48]",
        "mov [rsp - 56], rax",
        "mov rax, [rdi + {red_zone} + 56]",
        "mov [rsp - 64], rax",
        "mov rax, [rdi + {red_zone} + 64]",
        "mov [rsp - 72], rax",
        "mov rax, [rdi + {red_zone} + 72]",
        "mov [rsp - 80], rax",
        "mov rax, [rdi + {red_zone} + 80]",
        "mov [rsp - 88], rax",
        "mov rax, [rdi + {red_zone} + 88]",
        "mov [rsp - 96], rax",
        "mov rax, [rdi + {red_zone} + 96]",
        "mov [rsp - 104], rax",
        "mov rax, [rdi + {red_zone} + 104]",
        "mov [rsp - 112], rax",
        "mov rax, [rdi + {red_zone} + 112]",
        "mov [rsp - 120], rax",
        "mov rax, [rdi + {red_zone} + 120]",
        "mov [rsp - 128], rax",
        "mov rax, [rdi + 0]",                       // every general-purpose register but rsp, rdi last
        "mov rbx, [rdi + 8]",
        "mov rcx, [rdi + 16]",
        "mov rdx, [rdi + 24]",
        "mov rsi, [rdi + 32]",
        "mov rbp, [rdi + 48]",
        "mov r8, [rdi + 56]",
        "mov r9, [rdi + 64]",
        "mov r10, [rdi + 72]",
        "mov r11, [rdi + 80]",
        "mov r12, [rdi + 88]",
        "mov r13, [rdi + 96]",
        "mov r14, [rdi + 104]",
        "mov r15, [rdi + 112]",
        "mov rdi, [rdi + 40]",
        "mov byte ptr [rip + {looping}], 1",        // tell the partner we are in the loop
        "2:",
        "jmp qword ptr [rip + {target}]",           // the loop: touches no register and no flag
        "3:",
        "lea rsp, [rsp - 128]",                     // step over the red zone (lea keeps the flags)
        "pushfq",                                   // the flags first, then rax to have a free register
        "push rax",
        "mov rax, [rsp + 168]",                     // `got` (rsp_loop + 24)
        "mov [rax + 8], rbx",                       // every other register into `got`
        "mov [rax + 16], rcx",
        "mov [rax + 24], rdx",
        "mov [rax + 32], rsi",
        "mov [rax + 48], rbp",
        "mov [rax + 56], r8",
        "mov [rax + 64], r9",
        "mov [rax + 72], r10",
        "mov [rax + 80], r11",
        "mov [rax + 88], r12",
        "mov [rax + 96], r13",
        "mov [rax + 104], r14",
        "mov [rax + 112], r15",
        "mov [rax + 40], rdi",
        "mov rbx, [rsp]",                           // rax, from the stack
        "mov [rax], rbx",
        "mov rbx, [rsp + 8]",                       // the flags, from the stack
        "mov [rax + {rflags}], rbx",
        "cld",                                      // back to what Rust expects
        "mov rbx, [rsp + 136]",                     // the red zone (rsp_loop - 8 - 8i)
        "mov [rax + {red_zone} + 0], rbx",
        "mov rbx, [rsp + 128]",
        "mov [rax + {red_zone} + 8], rbx",
        "mov rbx, [rsp + 120]",
        "mov [rax + {red_zone} + 16], rbx",
        "mov rbx, [rsp + 112]",
        "mov [rax + {red_zone} + 24], rbx",
        "mov rbx, [rsp + 104]",
        "mov [rax + {red_zone} + 32], rbx",
        "mov rbx, [rsp + 96]",
        "mov [rax + {red_zone} + 40], rbx",
        "mov rbx, [rsp + 88]",
        "mov [rax + {red_zone} + 48], rbx",
        "mov rbx, [rsp + 80]",
        "mov [rax + {red_zone} + 56], rbx",
        "mov rbx, [rsp + 72]",
        "mov [rax + {red_zone} + 64], rbx",
        "mov rbx, [rsp + 64]",
        "mov [rax + {red_zone} + 72], rbx",
        "mov rbx, [rsp + 56]",
        "mov [rax + {red_zone} + 80], rbx",
        "mov rbx, [rsp + 48]",
        "mov [rax + {red_zone} + 88], rbx",
        "mov rbx, [rsp + 40]",
        "mov [rax + {red_zone} + 96], rbx",
        "mov rbx, [rsp + 32]",
        "mov [rax + {red_zone} + 104], rbx",
        "mov rbx, [rsp + 24]",
        "mov [rax + {red_zone} + 112], rbx",
        "mov rbx, [rsp + 16]",
        "mov [rax + {red_zone} + 120], rbx",
        "stmxcsr [rax + {mxcsr}]",
        "mov rbx, [rsp + 160]",                     // level (rsp_loop + 16)
        "cmp rbx, 1",
        "jae 50f",
        "movdqu [rax + {vector} + 0], xmm0",
        "movdqu [rax + {vector} + 64], xmm1",
        "movdqu [rax + {vector} + 128], xmm2",
        "movdqu [rax + {vector} + 192], xmm3",
        "movdqu [rax + {vector} + 256], xmm4",
        "movdqu [rax + {vector} + 320], xmm5",
        "movdqu [rax + {vector} + 384], xmm6",
        "movdqu [rax + {vector} + 448], xmm7",
        "movdqu [rax + {vector} + 512], xmm8",
        "movdqu [rax + {vector} + 576], xmm9",
        "movdqu [rax + {vector} + 640], xmm10",
        "movdqu [rax + {vector} + 704], xmm11",
        "movdqu [rax + {vector} + 768], xmm12",
        "movdqu [rax + {vector} + 832], xmm13",
        "movdqu [rax + {vector} + 896], xmm14",
        "movdqu [rax + {vector} + 960], xmm15",
        "jmp 52f",
        "50:",
        "cmp rbx, 2",
        "jae 51f",
        "vmovdqu [rax + {vector} + 0], ymm0",
        "vmovdqu [rax + {vector} + 64], ymm1",
        "vmovdqu [rax + {vector} + 128], ymm2",
        "vmovdqu [rax + {vector} + 192], ymm3",
        "vmovdqu [rax + {vector} + 256], ymm4",
        "vmovdqu [rax + {vector} + 320], ymm5",
        "vmovdqu [rax + {vector} + 384], ymm6",
        "vmovdqu [rax + {vector} + 448], ymm7",
        "vmovdqu [rax + {vector} + 512], ymm8",
        "vmovdqu [rax + {vector} + 576], ymm9",
        "vmovdqu [rax + {vector} + 640], ymm10",
        "vmovdqu [rax + {vector} + 704], ymm11",
        "vmovdqu [rax + {vector} + 768], ymm12",
        "vmovdqu [rax + {vector} + 832], ymm13",
        "vmovdqu [rax + {vector} + 896], ymm14",
        "vmovdqu [rax + {vector} + 960], ymm15",
        "vzeroupper",                               // no dirty upper halves for the caller's SSE code
        "jmp 52f",
        "51:",
        "vmovdqu64 [rax + {vector} + 0], zmm0",
        "vmovdqu64 [rax + {vector} + 64], zmm1",
        "vmovdqu64 [rax + {vector} + 128], zmm2",
        "vmovdqu64 [rax + {vector} + 192], zmm3",
        "vmovdqu64 [rax + {vector} + 256], zmm4",
        "vmovdqu64 [rax + {vector} + 320], zmm5",
        "vmovdqu64 [rax + {vector} + 384], zmm6",
        "vmovdqu64 [rax + {vector} + 448], zmm7",
        "vmovdqu64 [rax + {vector} + 512], zmm8",
        "vmovdqu64 [rax + {vector} + 576], zmm9",
        "vmovdqu64 [rax + {vector} + 640], zmm10",
        "vmovdqu64 [rax + {vector} + 704], zmm11",
        "vmovdqu64 [rax + {vector} + 768], zmm12",
        "vmovdqu64 [rax + {vector} + 832], zmm13",
        "vmovdqu64 [rax + {vector} + 896], zmm14",
        "vmovdqu64 [rax + {vector} + 960], zmm15",
        "vmovdqu64 [rax + {vector} + 1024], zmm16",
        "vmovdqu64 [rax + {vector} + 1088], zmm17",
        "vmovdqu64 [rax + {vector} + 1152], zmm18",
        "vmovdqu64 [rax + {vector} + 1216], zmm19",
        "vmovdqu64 [rax + {vector} + 1280], zmm20",
        "vmovdqu64 [rax + {vector} + 1344], zmm21",
        "vmovdqu64 [rax + {vector} + 1408], zmm22",
        "vmovdqu64 [rax + {vector} + 1472], zmm23",
        "vmovdqu64 [rax + {vector} + 1536], zmm24",
        "vmovdqu64 [rax + {vector} + 1600], zmm25",
        "vmovdqu64 [rax + {vector} + 1664], zmm26",
        "vmovdqu64 [rax + {vector} + 1728], zmm27",
        "vmovdqu64 [rax + {vector} + 1792], zmm28",
        "vmovdqu64 [rax + {vector} + 1856], zmm29",
        "vmovdqu64 [rax + {vector} + 1920], zmm30",
        "vmovdqu64 [rax + {vector} + 1984], zmm31",
        "kmovw [rax + {k} + 0], k0",
        "kmovw [rax + {k} + 8], k1",
        "kmovw [rax + {k} + 16], k2",
        "kmovw [rax + {k} + 24], k3",
        "kmovw [rax + {k} + 32], k4",
        "kmovw [rax + {k} + 40], k5",
        "kmovw [rax + {k} + 48], k6",
        "kmovw [rax + {k} + 56], k7",
        "vzeroupper",
        "52:",
        "ldmxcsr [rsp + 144]",                      // the caller's MXCSR (rsp_loop)
        "lea rsp, [rsp + 176]",                     // rsp_loop + 32: the callee-saved registers
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        target = sym TARGET,
        exit = sym EXIT,
        looping = sym LOOPING,
        vector = const offset_of!(State, vector),
        k = const offset_of!(State, k),
        mxcsr = const offset_of!(State, mxcsr),
        rflags = const offset_of!(State, rflags),
        red_zone = const offset_of!(State, red_zone),
    )
}

/// Yields once: what the partner's asm calls.
extern "sysv64" fn yield_from_asm() {
    yield_now();
}

/// Fills every register the checker loads with garbage (vector registers
/// as far as `level`, MXCSR with another mode) and yields from the asm, so
/// that the checker is resumed with the garbage in place.
fn clobber_and_yield(level: u64) {
    // SAFETY: rbx and rbp are pushed and popped; r12-r15 declared
    // clobbered (r12 keeps the stack pointer across the call), everything
    // else is caller-saved and covered by clobber_abi, the flags included.
    // Our MXCSR is saved and put back; DF is never set. The call is
    // 16-byte aligned. `yield_from_asm` is a safe function.
    unsafe {
        asm!(
            "push rbx",                             // rbx and rbp cannot be declared clobbered: saved here
            "push rbp",
            "mov r12, rsp",                         // r12 (declared clobbered) is the way back
            "and rsp, -16",                         // aligned for the call
            "sub rsp, 16",
            "stmxcsr [rsp]",                        // ours, back after the call
            "ldmxcsr [rip + {garbage_mxcsr}]",      // another rounding mode and other status flags
            "cmp rdi, 1",                           // rdi = level: garbage in every vector register it has
            "jae 40f",
            "pcmpeqd xmm0, xmm0",                   // all ones
            "pcmpeqd xmm1, xmm1",
            "pcmpeqd xmm2, xmm2",
            "pcmpeqd xmm3, xmm3",
            "pcmpeqd xmm4, xmm4",
            "pcmpeqd xmm5, xmm5",
            "pcmpeqd xmm6, xmm6",
            "pcmpeqd xmm7, xmm7",
            "pcmpeqd xmm8, xmm8",
            "pcmpeqd xmm9, xmm9",
            "pcmpeqd xmm10, xmm10",
            "pcmpeqd xmm11, xmm11",
            "pcmpeqd xmm12, xmm12",
            "pcmpeqd xmm13, xmm13",
            "pcmpeqd xmm14, xmm14",
            "pcmpeqd xmm15, xmm15",
            "jmp 42f",
            "40:",
            "cmp rdi, 2",
            "jae 41f",
            "vpcmpeqd ymm0, ymm0, ymm0",
            "vpcmpeqd ymm1, ymm1, ymm1",
            "vpcmpeqd ymm2, ymm2, ymm2",
            "vpcmpeqd ymm3, ymm3, ymm3",
            "vpcmpeqd ymm4, ymm4, ymm4",
            "vpcmpeqd ymm5, ymm5, ymm5",
            "vpcmpeqd ymm6, ymm6, ymm6",
            "vpcmpeqd ymm7, ymm7, ymm7",
            "vpcmpeqd ymm8, ymm8, ymm8",
            "vpcmpeqd ymm9, ymm9, ymm9",
            "vpcmpeqd ymm10, ymm10, ymm10",
            "vpcmpeqd ymm11, ymm11, ymm11",
            "vpcmpeqd ymm12, ymm12, ymm12",
            "vpcmpeqd ymm13, ymm13, ymm13",
            "vpcmpeqd ymm14, ymm14, ymm14",
            "vpcmpeqd ymm15, ymm15, ymm15",
            "jmp 42f",
            "41:",
            "vpternlogd zmm0, zmm0, zmm0, 0xff",
            "vpternlogd zmm1, zmm1, zmm1, 0xff",
            "vpternlogd zmm2, zmm2, zmm2, 0xff",
            "vpternlogd zmm3, zmm3, zmm3, 0xff",
            "vpternlogd zmm4, zmm4, zmm4, 0xff",
            "vpternlogd zmm5, zmm5, zmm5, 0xff",
            "vpternlogd zmm6, zmm6, zmm6, 0xff",
            "vpternlogd zmm7, zmm7, zmm7, 0xff",
            "vpternlogd zmm8, zmm8, zmm8, 0xff",
            "vpternlogd zmm9, zmm9, zmm9, 0xff",
            "vpternlogd zmm10, zmm10, zmm10, 0xff",
            "vpternlogd zmm11, zmm11, zmm11, 0xff",
            "vpternlogd zmm12, zmm12, zmm12, 0xff",
            "vpternlogd zmm13, zmm13, zmm13, 0xff",
            "vpternlogd zmm14, zmm14, zmm14, 0xff",
            "vpternlogd zmm15, zmm15, zmm15, 0xff",
            "vpternlogd zmm16, zmm16, zmm16, 0xff",
            "vpternlogd zmm17, zmm17, zmm17, 0xff",
            "vpternlogd zmm18, zmm18, zmm18, 0xff",
            "vpternlogd zmm19, zmm19, zmm19, 0xff",
            "vpternlogd zmm20, zmm20, zmm20, 0xff",
            "vpternlogd zmm21, zmm21, zmm21, 0xff",
            "vpternlogd zmm22, zmm22, zmm22, 0xff",
            "vpternlogd zmm23, zmm23, zmm23, 0xff",
            "vpternlogd zmm24, zmm24, zmm24, 0xff",
            "vpternlogd zmm25, zmm25, zmm25, 0xff",
            "vpternlogd zmm26, zmm26, zmm26, 0xff",
            "vpternlogd zmm27, zmm27, zmm27, 0xff",
            "vpternlogd zmm28, zmm28, zmm28, 0xff",
            "vpternlogd zmm29, zmm29, zmm29, 0xff",
            "vpternlogd zmm30, zmm30, zmm30, 0xff",
            "vpternlogd zmm31, zmm31, zmm31, 0xff",
            "kxnorw k0, k0, k0",
            "kxnorw k1, k1, k1",
            "kxnorw k2, k2, k2",
            "kxnorw k3, k3, k3",
            "kxnorw k4, k4, k4",
            "kxnorw k5, k5, k5",
            "kxnorw k6, k6, k6",
            "kxnorw k7, k7, k7",
            "42:",
            "mov rax, -1",                          // garbage in the general-purpose registers
            "mov rbx, -2",
            "mov rcx, -3",
            "mov rdx, -4",
            "mov rsi, -5",
            "mov rdi, -6",
            "mov rbp, -7",
            "mov r8, -8",
            "mov r9, -9",
            "mov r10, -10",
            "mov r11, -11",
            "mov r13, -12",
            "mov r14, -13",
            "mov r15, -14",
            "cmp rax, rbx",                         // and other flags (CF, SF, OF all differ from the checker's)
            "call {yield_}",                        // the checker runs next, after its trampoline
            "ldmxcsr [rsp]",
            "mov rsp, r12",
            "pop rbp",
            "pop rbx",
            garbage_mxcsr = sym GARBAGE_MXCSR,
            yield_ = sym yield_from_asm,
            in("rdi") level,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("sysv64"),
        );
    }
}

/// The vector levels this machine can test: SSE always, AVX and AVX-512
/// when the CPU has them and the OS saves them (XCR0).
fn levels() -> io::Result<Vec<u64>> {
    let components = vector_state()?.components;
    let mut levels = vec![SSE];
    if std::arch::is_x86_feature_detected!("avx") && components & 0b100 != 0 {
        levels.push(AVX);
    }
    if std::arch::is_x86_feature_detected!("avx512f") && components & 0b1110_0000 == 0b1110_0000 {
        levels.push(AVX512);
    }
    Ok(levels)
}

#[test]
fn every_register_survives_thousands_of_asynchronous_preemptions() -> io::Result<()> {
    for level in levels()? {
        for switch in SWITCHES {
            survives(level, switch)?;
        }
    }
    Ok(())
}

fn survives(level: u64, switch: Switch) -> io::Result<()> {
    let want = State::pattern();
    TARGET.store(0, Ordering::Relaxed);
    LOOPING.store(false, Ordering::Relaxed);
    let config = Config { preempt: Preempt::Asynchronous { quantum: QUANTUM }, switch, ..Config::default() };
    let (got, partner_turns, stats) = run(config, || -> io::Result<_> {
        let checker = spawn(move || {
            let mut got = State::zeroed();
            // SAFETY: both states are ours; `level` comes from `levels()`;
            // the partner below points TARGET at the exit.
            unsafe { checker(&want, &mut got, level) };
            got
        })?;
        let partner = spawn(move || {
            // The checker runs first (spawned first); once it loops, every
            // turn of ours is one preemption of it.
            while !LOOPING.load(Ordering::Relaxed) {
                yield_now();
            }
            let mut turns = 0;
            while turns < PREEMPTIONS {
                clobber_and_yield(level);
                turns += 1;
            }
            TARGET.store(EXIT.load(Ordering::Relaxed), Ordering::Relaxed);
            turns
        })?;
        let got = checker.join().map_err(io::Error::other)?;
        let turns = partner.join().map_err(io::Error::other)?;
        Ok((got, turns, stats().expect("inside run")))
    })??;
    let level_name = ["SSE", "AVX", "AVX-512"][level as usize];
    assert_eq!(partner_turns, PREEMPTIONS);
    assert!(
        stats.preempted_asynchronously >= PREEMPTIONS,
        "{level_name}, {switch:?}: the checker was preempted only {} times: {stats:?}",
        stats.preempted_asynchronously
    );
    let wrong = differences(&want, &got, level);
    assert!(
        wrong.is_empty(),
        "{level_name}, {switch:?}: after {} preemptions, {} registers differ:\n  {}",
        stats.preempted_asynchronously,
        wrong.len(),
        wrong.join("\n  ")
    );
    Ok(())
}
