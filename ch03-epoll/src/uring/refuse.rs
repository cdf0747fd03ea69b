//! Refusing io_uring to a child process the way containers do, to prove
//! that a program says why and goes on where io_uring is not available.
//!
//! A seccomp filter, installed in the child just before it starts the
//! program, makes `io_uring_setup` fail with `EPERM` (Docker's default
//! profile) or `ENOSYS` (gVisor, old kernels). The filter only touches the
//! child; the parent keeps its io_uring. The tests of this chapter and of
//! chapter 5 run their demos, benches and test binaries this way.
//!
//! x86-64 only: a seccomp filter checks the CPU architecture by number.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

/// `AUDIT_ARCH_X86_64` (`include/uapi/linux/audit.h`: `EM_X86_64 |
/// __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`): what a seccomp filter sees as
/// the architecture of a 64-bit x86 system call. libc does not have it.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// A seccomp program (classic BPF) that fails `io_uring_setup` with `errno`
/// and allows everything else. It reads `struct seccomp_data`: the system
/// call's number at offset 0, the architecture at offset 4.
fn refuse_io_uring(errno: i32) -> Vec<libc::sock_filter> {
    let op = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter { code: code as u16, jt, jf, k };
    let (load, jump_if_equal, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    vec![
        op(load, 4, 0, 0),                                        // the architecture
        op(jump_if_equal, AUDIT_ARCH_X86_64, 1, 0),               // x86-64: go on; else...
        op(ret, libc::SECCOMP_RET_ALLOW, 0, 0),                   // ...allow (numbers differ per architecture)
        op(load, 0, 0, 0),                                        // the system call's number
        op(jump_if_equal, libc::SYS_io_uring_setup as u32, 0, 1), // io_uring_setup: next, else skip it
        op(ret, libc::SECCOMP_RET_ERRNO | errno as u32, 0, 0),    // fail it with errno
        op(ret, libc::SECCOMP_RET_ALLOW, 0, 0),                   // everything else runs
    ]
}

/// A `Command` for `program` whose process starts with `io_uring_setup`
/// refused with `errno`. Where this machine does not let a process install
/// a seccomp filter, running it fails (`Command::output` returns the error):
/// then there is nothing to prove, and the caller should skip, saying so.
pub fn command_refusing_io_uring(program: impl AsRef<OsStr>, errno: i32) -> Command {
    // Built before the fork: the child must not allocate between fork and exec.
    let filter = refuse_io_uring(errno);
    let mut command = Command::new(program);
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it makes two `prctl` system
    // calls and reads nothing but `filter`, its own copy after the fork.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            // Without "no new privileges", an unprivileged process may not
            // install a filter (so a setuid program cannot be tricked).
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &raw const program) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Runs `program args` (without `DELAY_SERVER`, so a demo starts its own
/// server) with `io_uring_setup` refused with `errno`, and returns what it
/// printed. `None`, after saying why on stderr, where this machine does not
/// let a process install a seccomp filter: then a test has nothing to
/// prove, and passes.
pub fn output_refusing_io_uring(program: &str, args: &[&str], errno: i32) -> Option<Output> {
    match command_refusing_io_uring(program, errno).args(args).env_remove("DELAY_SERVER").output() {
        Ok(output) => Some(output),
        Err(e) => {
            // Straight to stderr, not through `eprintln!`, which the test
            // harness captures (and shows only for failing tests).
            let _ = writeln!(io::stderr(), "skipped: cannot install a seccomp filter here ({e})");
            None
        }
    }
}
