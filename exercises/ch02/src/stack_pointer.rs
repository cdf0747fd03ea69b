//! Exercise 2.2: where is my stack?
//!
//! The stack pointer, the register `rsp` on x86-64, holds the address of the
//! top of the running code's stack: the most recent thing pushed. Every
//! fiber has a stack of its own (chapter 2 maps one per fiber), and a
//! context switch is nothing but saving one `rsp` and loading another.
//! Read the register yourself, with one instruction of inline assembly, and
//! see where each fiber's stack is and which way it grows.
//!
//! Check it: `cargo run -p ch02-exercises -- 2`

/// The value of `rsp` at the moment of the call: the lowest address of the
/// stack in use (the stack grows down, towards lower addresses).
#[inline(never)]
pub fn stack_pointer() -> usize {
    todo!("read rsp with std::arch::asm!")
}
