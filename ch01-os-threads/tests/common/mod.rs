//! Helpers shared by the tests that take a thread apart in memory.
//!
//! Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::io;

/// One line of `/proc/self/maps`: `[start, end)` and the permissions.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// `rw-p`, `---p`, ...
    pub perms: String,
}

/// Every mapping of this process, lowest address first.
pub fn maps() -> io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string("/proc/self/maps")?;
    let bad = |line: &str| io::Error::new(io::ErrorKind::InvalidData, format!("odd maps line {line:?}"));
    text.lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (range, perms) = (words.next().ok_or_else(|| bad(line))?, words.next().ok_or_else(|| bad(line))?);
            let (start, end) = range.split_once('-').ok_or_else(|| bad(line))?;
            let hex = |h: &str| usize::from_str_radix(h, 16).map_err(|_| bad(line));
            Ok(Mapping { start: hex(start)?, end: hex(end)?, perms: perms.to_string() })
        })
        .collect()
}

/// The mapping that contains `address`, if any.
pub fn mapping_at(maps: &[Mapping], address: usize) -> Option<Mapping> {
    maps.iter().find(|m| m.start <= address && address < m.end).cloned()
}

/// The calling thread's alternate signal stack (`sigaltstack`): its start
/// and size, or `None` if it has none.
pub fn signal_stack() -> io::Result<Option<(usize, usize)>> {
    // SAFETY: an all-zero stack_t is valid; a null new stack only reads the
    // current one into `current`.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let disabled = current.ss_flags & libc::SS_DISABLE != 0;
    Ok((!disabled).then_some((current.ss_sp as usize, current.ss_size)))
}

/// The size std gives the signal stacks it makes on Linux: the larger of the
/// C library's `SIGSTKSZ` and the kernel's `AT_MINSIGSTKSZ` (0 on kernels
/// that do not report it), which depends on the CPU's register state.
pub fn std_signal_stack_size() -> usize {
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let kernel_minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    libc::SIGSTKSZ.max(kernel_minimum)
}

/// Whether the calling thread's signal stack looks like one std made: its
/// size, or the guard page below it. std makes one only if nobody else set
/// up `SIGSEGV` handling first; a sanitizer runtime (AddressSanitizer, say)
/// does, with guardless signal stacks of its own, and then a thread is not
/// the four mappings these tests count. (Either sign is enough, so a change
/// in std's size *or* its guard still makes the tests run, and fail.)
pub fn signal_stack_is_stds() -> io::Result<bool> {
    let Some((start, size)) = signal_stack()? else { return Ok(false) };
    let guarded = mapping_at(&maps()?, start.wrapping_sub(1)).is_some_and(|below| below.perms == "---p");
    Ok(size == std_signal_stack_size() || guarded)
}

/// Says why a test does not apply here, and lets it return.
pub fn skip(test: &str) {
    eprintln!(
        "{test}: skipped: this thread's signal stack was not made by std (a sanitizer runtime installs its own), \
         so a thread is not std's four mappings here"
    );
}
