//! One syscall, `write`, made three ways: from the bottom (raw CPU
//! instruction) to the top (a library binding).
//!
//! The operating system is an abstraction over the hardware: our program may
//! not touch the terminal, the disk or the network card itself. It asks the
//! kernel, through a *system call*: put the call's number and arguments in
//! agreed registers and execute an instruction that switches the CPU into
//! kernel mode. The kernel checks the request, does the work, and puts the
//! result back in a register. That register convention is the OS's public API
//! at the lowest level; the C library (`libc`) wraps each call in a function.
//!
//! | function            | how it reaches the kernel                                      |
//! |---------------------|----------------------------------------------------------------|
//! | [`write_asm`]       | our own `syscall` instruction (x86-64 Linux only)              |
//! | [`write_libc`]      | the `libc` crate's binding of the C library's `write`          |
//! | [`write_ffi`]       | our own `unsafe extern "C"` declaration of that same C function |
//!
//! All three take any open file descriptor (stdout in the demo, a socket in
//! the tests) and return how many bytes the kernel took, or the error it
//! reported. Like any `write`, they may take fewer bytes than offered.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use ch01_os_threads::syscall;

/// The shape all three share: write `bytes` to `fd`, get the count back.
pub type WriteFn = fn(BorrowedFd<'_>, &[u8]) -> io::Result<usize>;

/// The three ways, with a description of each, in the order the demo runs them.
pub const WAYS: [(&str, WriteFn); 3] = [
    ("the `syscall` instruction (inline asm)", write_asm),
    ("libc::write", write_libc),
    ("our own extern \"C\" fn write", write_ffi),
];

/// `write(fd, bytes)` with the `syscall` instruction, no library involved.
///
/// Only x86-64 Linux has the register convention written here; elsewhere this
/// returns an [`io::ErrorKind::Unsupported`] error (the other two ways work
/// on every Linux).
pub fn write_asm(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        x86_64::write(fd, bytes)
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = (fd, bytes);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "write_asm is written for x86-64 Linux only (its registers and syscall numbers); \
             use write_libc or write_ffi here",
        ))
    }
}

/// The raw-instruction version, in its own module because it is specific to
/// one CPU and one OS.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod x86_64 {
    use std::arch::asm;
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};

    // ANCHOR: asm
    /// `write` through the `syscall` instruction.
    ///
    /// The x86-64 Linux convention: the syscall number goes in `rax` (1 is
    /// `write`), the arguments in `rdi`, `rsi`, `rdx`; the result comes back
    /// in `rax`. The CPU itself overwrites `rcx` (the return address) and
    /// `r11` (the saved flags) while switching to the kernel, so we tell the
    /// compiler those two are clobbered.
    ///
    /// ```text
    ///   rax = 1 (SYS_write) ─┐
    ///   rdi = fd             │  syscall   ──►  kernel: sys_write(fd, buf, len)
    ///   rsi = buf pointer    │                         │
    ///   rdx = len           ─┘  rax  ◄─────────────────┘  bytes written, or -errno
    /// ```
    pub(super) fn write(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
        let result: isize;
        // SAFETY: `write` only reads `bytes.len()` bytes from `bytes.as_ptr()`,
        // which is a valid slice for the duration of the call; `fd` is an
        // open descriptor (BorrowedFd guarantees it). The asm declares every
        // register the instruction changes (rax for the result, rcx and r11
        // by the CPU) and does not use our stack, hence `nostack`.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") libc::SYS_write as isize => result, // number in, result out
                in("rdi") fd.as_raw_fd() as isize,                    // 1st argument: the fd
                in("rsi") bytes.as_ptr(),                             // 2nd: where the bytes are
                in("rdx") bytes.len(),                                // 3rd: how many
                lateout("rcx") _,                                     // overwritten by `syscall`
                lateout("r11") _,                                     // overwritten by `syscall`
                options(nostack),
            );
        }
        // The raw kernel convention: -4095..=-1 is an error number, negated.
        // (The C library turns this into -1 plus `errno`; we do it ourselves.)
        if (-4095..0).contains(&result) {
            Err(io::Error::from_raw_os_error(-result as i32))
        } else {
            Ok(result as usize)
        }
    }
    // ANCHOR_END: asm
}

// ANCHOR: libc
/// `write(fd, bytes)` through the `libc` crate, the way most Rust code (std
/// included) reaches the kernel on Linux.
pub fn write_libc(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the `bytes` slice, valid and
    // only read during the call; `fd` is open for the call's duration.
    let written = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    // The C convention: -1 means "failed, the reason is in errno"; chapter
    // 1's `syscall!` turns that into an `io::Result`.
    Ok(syscall!(written)? as usize)
}
// ANCHOR_END: libc

// ANCHOR: ffi
/// Our own declaration of the C library's `write`, instead of `libc`'s.
///
/// Edition 2024 makes the block itself `unsafe extern`: by writing it we
/// promise the signature matches the real C function. The compiler cannot
/// check that; a wrong type here would be undefined behaviour at every call.
mod ffi {
    unsafe extern "C" {
        /// `ssize_t write(int fd, const void *buf, size_t count);` from
        /// `man 2 write`, spelled in Rust's C-compatible types.
        pub unsafe fn write(fd: std::ffi::c_int, buf: *const std::ffi::c_void, count: usize) -> isize;
    }
}

/// `write(fd, bytes)` through the hand-declared `ffi::write` above.
pub fn write_ffi(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the declaration in `ffi` matches the C prototype (int, const
    // void *, size_t) -> ssize_t on Linux; the pointer and length describe the
    // `bytes` slice, valid and only read during the call; `fd` is open.
    let written = unsafe { ffi::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    Ok(syscall!(written)? as usize)
}
// ANCHOR_END: ffi

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn each_way_writes_the_bytes() {
        for (name, write) in WAYS {
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            let message = format!("hello from {name}\n");
            let written = write(ours.as_fd(), message.as_bytes()).unwrap();
            assert_eq!(written, message.len(), "{name}");
            let mut received = vec![0; message.len()];
            theirs.read_exact(&mut received).unwrap();
            assert_eq!(received, message.as_bytes(), "{name}");
        }
    }

    #[test]
    fn each_way_reports_the_kernels_error() {
        // A file opened only for reading: the kernel refuses writes with EBADF.
        let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        for (name, write) in WAYS {
            let err = write(file.as_fd(), b"nope").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{name}: {err}");
        }
    }
}
