//! Fiber stacks: `mmap`ed memory with a guard page, recycled through a free
//! list, with a high-water mark that says how much of it a fiber really used.
//!
//! ```text
//!  base                     base + page                                   top
//!  +------------------------+----------------------------------------------+
//!  | guard page (PROT_NONE) | usable stack: grows down from `top`  <------ |
//!  +------------------------+----------------------------------------------+
//! ```
//!
//! A stack is a plain range of memory; nothing stops a function from writing
//! below its end. The guard page is what turns an overflow into a fault the
//! kernel reports (SIGSEGV, see [`crate::overflow`]) instead of silently
//! overwriting whatever memory lies below. Rust helps: any function with a
//! frame bigger than a page touches ("probes") its frame page by page from the
//! top, so it cannot jump over the guard page.
//!
//! ## High-water mark
//!
//! The classic way to measure how much stack a thread used is to fill the
//! stack with a known pattern and later find the deepest word that changed.
//! Our pattern is zero, because the kernel already fills fresh pages with
//! zeros for free. Filling 64 KiB with anything else would touch every page
//! and make all of it resident in RAM, which is exactly what a small fiber is
//! supposed to avoid. To find the deepest change without reading (and so
//! faulting in) pages nobody touched, we first ask the kernel which pages are
//! resident (`mincore`), then look for the lowest non-zero word from there.
//! Before a stack is reused, the used part is zeroed again.

use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;

use ch01_os_threads::syscall;

use crate::asan;

/// The default usable size of a fiber stack.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

/// The system's page size (`sysconf(_SC_PAGESIZE)`, 4 KiB on x86-64 Linux).
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf only reads a system setting.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 { size as usize } else { 4096 }
    })
}

// ANCHOR: stack
/// One fiber stack: a guard page at the low end, then the usable stack.
/// Unmapped on drop.
#[derive(Debug)]
pub struct Stack {
    /// Lowest address of the mapping: the start of the guard page.
    base: NonNull<u8>,
    /// Length of the whole mapping: guard page plus usable stack.
    len: usize,
}

impl Stack {
    /// Maps a stack with `size` usable bytes (rounded up to whole pages) and a
    /// guard page below them.
    pub fn new(size: usize) -> io::Result<Stack> {
        let page = page_size();
        if size == 0 || size > 1 << 30 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a stack of {size} bytes? use 1 B to 1 GiB"),
            ));
        }
        let usable = size.div_ceil(page) * page;
        let len = usable + page;
        // SAFETY: a fresh private anonymous mapping: the kernel picks the
        // address, nothing existing is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::other(format!(
                "mmap of a {} KiB fiber stack failed: {}",
                len / 1024,
                io::Error::last_os_error()
            )));
        }
        let stack = Stack { base: NonNull::new(base.cast()).expect("mmap returned null, not MAP_FAILED"), len };
        // The lowest page becomes the guard: any access to it faults. (If this
        // fails, dropping `stack` unmaps the whole range again.)
        // SAFETY: the first page of the mapping we just created and own.
        syscall!(unsafe { libc::mprotect(base, page, libc::PROT_NONE) })?;
        // An ASan build: an earlier stack unmapped at this address may have
        // left poison in the shadow; this memory is fresh.
        asan::unpoison(stack.bottom(), stack.size());
        Ok(stack)
    }
    // ANCHOR_END: stack

    /// The high end of the stack, where a fiber starts (page-aligned, so also
    /// 16-byte aligned). The stack grows down from here.
    pub fn top(&self) -> *mut u8 {
        // SAFETY: one past the end of our own mapping.
        unsafe { self.base.as_ptr().add(self.len) }
    }

    /// The guard page's address range: `start..start + page_size()`.
    pub fn guard(&self) -> std::ops::Range<usize> {
        let start = self.base.as_ptr() as usize;
        start..start + page_size()
    }

    /// Usable bytes (without the guard page).
    pub fn size(&self) -> usize {
        self.len - page_size()
    }

    /// The lowest usable address (just above the guard page).
    pub fn bottom(&self) -> *mut u8 {
        // SAFETY: the guard page is inside our mapping.
        unsafe { self.base.as_ptr().add(page_size()) }
    }

    // ANCHOR: high_water
    /// How many bytes from the top down have been written with something other
    /// than zero since the stack was mapped or last [`Stack::clear_used`].
    ///
    /// # Safety
    ///
    /// No code may be running on this stack or suspended on it with live
    /// frames: the stack must be unused (for example, its fiber finished).
    pub unsafe fn used_bytes(&self) -> io::Result<usize> {
        let page = page_size();
        let pages = self.size() / page;
        // Ask the kernel which pages are resident, a chunk of pages at a time
        // (a fixed buffer: no allocation), starting from the lowest one.
        let mut lowest_resident = None;
        let mut resident = [0u8; 64];
        'chunks: for first in (0..pages).step_by(resident.len()) {
            let count = resident.len().min(pages - first);
            // SAFETY: page `first` lies inside our usable range.
            let start = unsafe { self.bottom().add(first * page) };
            // SAFETY: [start, start + count pages) lies in our mapping and
            // starts on a page boundary; `resident` has room for `count` entries.
            let result = unsafe { libc::mincore(start.cast(), count * page, resident.as_mut_ptr()) };
            syscall!(result)?;
            for (i, flags) in resident[..count].iter().enumerate() {
                if flags & 1 == 1 {
                    lowest_resident = Some(first + i);
                    break 'chunks;
                }
            }
        }
        let Some(first_page) = lowest_resident else { return Ok(0) };
        // Untouched pages were never written, so the deepest write is in a
        // resident page: scan up from the lowest one for the first non-zero word.
        let words = (pages - first_page) * page / 8;
        // SAFETY: the range [first resident page, top) is mapped, readable and
        // 8-byte aligned; the caller guarantees nothing runs on it.
        let used = unsafe {
            let start = self.bottom().add(first_page * page).cast::<u64>();
            (0..words).find(|&i| start.add(i).read_volatile() != 0).map_or(0, |i| (words - i) * 8)
        };
        Ok(used)
    }
    // ANCHOR_END: high_water

    /// Zeroes the top `used` bytes again, so the next fiber's high-water mark
    /// starts from a clean stack.
    ///
    /// # Safety
    ///
    /// As for [`Stack::used_bytes`]: nothing may be running or suspended on
    /// this stack.
    pub unsafe fn clear_used(&mut self, used: usize) {
        let used = used.min(self.size());
        // SAFETY: [top - used, top) is inside the usable part of our mapping,
        // and the caller guarantees no live frames are there.
        unsafe { self.top().sub(used).write_bytes(0, used) };
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: we own this mapping, and the code running now is not on it
        // (it would be on the stack it is dropping). A context may still be
        // suspended on it (the bench's and the register test's partners are,
        // forever): unmapping is sound as long as that context is never
        // resumed, and resuming one takes `unsafe` `arch::switch`, whose
        // contract requires its stack to be mapped. The runtime unmaps only
        // stacks of finished fibers, and leaks those of abandoned ones.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// ANCHOR: pool
/// Stacks of one size, recycled: a finished fiber's stack goes on a free list
/// and the next spawn takes it from there instead of calling `mmap` (a few
/// microseconds, plus a page fault for every page touched again).
#[derive(Debug)]
pub struct StackPool {
    /// Usable size of every stack in this pool.
    size: usize,
    /// Stacks ready for reuse, most recently freed last (reused first: its
    /// pages are the most likely to still be in the CPU caches).
    free: Vec<Stack>,
    /// At most this many free stacks are kept; the rest are unmapped.
    max_free: usize,
    /// How many stacks of this pool are mapped right now (free or in use).
    mapped: usize,
}

impl StackPool {
    /// A pool of `size`-byte stacks keeping at most `max_free` free ones.
    pub fn new(size: usize, max_free: usize) -> StackPool {
        StackPool { size, free: Vec::new(), max_free, mapped: 0 }
    }

    /// A stack from the free list, or a freshly mapped one if it is empty.
    /// The flag says whether it was recycled.
    pub fn take(&mut self) -> io::Result<(Stack, bool)> {
        if let Some(stack) = self.free.pop() {
            return Ok((stack, true));
        }
        let stack = Stack::new(self.size)?;
        self.mapped += 1;
        Ok((stack, false))
    }

    /// Puts a stack on the free list (or unmaps it if the list is full).
    pub fn give_back(&mut self, stack: Stack) {
        if self.free.len() < self.max_free {
            self.free.push(stack);
        } else {
            self.mapped -= 1;
            drop(stack);
        }
    }
    // ANCHOR_END: pool

    /// Unmaps a stack of this pool instead of keeping it.
    pub fn unmap(&mut self, stack: Stack) {
        self.mapped -= 1;
        drop(stack);
    }

    /// Stacks of this pool that are mapped right now, in use or free.
    pub fn mapped(&self) -> usize {
        self.mapped
    }

    /// Stacks on the free list.
    pub fn free(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stack_is_unused_and_writes_are_measured() -> io::Result<()> {
        let mut stack = Stack::new(16 * 1024)?;
        assert_eq!(stack.size(), 16 * 1024);
        assert_eq!(stack.top() as usize % 16, 0);
        // SAFETY: nothing runs on this stack; we write inside its usable part.
        unsafe {
            assert_eq!(stack.used_bytes()?, 0);
            stack.top().sub(3000).write(7);
            assert_eq!(stack.used_bytes()?, 3000_usize.div_ceil(8) * 8);
            stack.clear_used(3000);
            assert_eq!(stack.used_bytes()?, 0);
        }
        Ok(())
    }

    #[test]
    fn pool_recycles_and_caps_the_free_list() -> io::Result<()> {
        let mut pool = StackPool::new(8192, 1);
        let (a, recycled_a) = pool.take()?;
        let (b, _) = pool.take()?;
        assert!(!recycled_a);
        assert_eq!(pool.mapped(), 2);
        let a_top = a.top();
        pool.give_back(a);
        pool.give_back(b); // over the cap: unmapped
        assert_eq!((pool.mapped(), pool.free()), (1, 1));
        let (again, recycled) = pool.take()?;
        assert!(recycled);
        assert_eq!(again.top(), a_top);
        Ok(())
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert_eq!(Stack::new(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(Stack::new(usize::MAX).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
