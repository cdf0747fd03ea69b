//! Exercise 1.2, solved: reserved is not resident.

use std::{io, ptr};

use ch01_os_threads::syscall;
use ch02_green_threads::stack::page_size;

/// Pages of address space reserved with `mmap`, readable and writable, and
/// given back with `munmap` when dropped.
#[derive(Debug)]
pub struct Reservation {
    /// The first byte of the mapping (page-aligned, as `mmap` returns it).
    start: *mut u8,
    /// Its length in bytes: a whole number of pages.
    bytes: usize,
}

impl Reservation {
    // ANCHOR: new
    /// Reserves `pages` pages of private, anonymous memory (no file behind
    /// it), readable and writable. Nothing is touched, so no RAM is used yet.
    pub fn new(pages: usize) -> io::Result<Reservation> {
        let bytes = pages
            .checked_mul(page_size())
            .filter(|&bytes| bytes > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("cannot reserve {pages} pages")))?;
        // SAFETY: a new anonymous mapping: no address asked for (the kernel
        // picks a free range, so nothing of ours is replaced) and no file.
        let start = unsafe {
            libc::mmap(
                ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Reservation { start: start.cast(), bytes })
    }
    // ANCHOR_END: new

    /// The first byte of the reservation.
    pub fn as_ptr(&self) -> *const u8 {
        self.start
    }

    /// How many pages are reserved.
    pub fn pages(&self) -> usize {
        self.bytes / page_size()
    }

    // ANCHOR: touch
    /// Writes one byte into page `page` (counting from 0), which makes the
    /// MMU back that page with RAM. A page past the end is an `InvalidInput`
    /// error, never a write outside the mapping.
    pub fn touch(&mut self, page: usize) -> io::Result<()> {
        if page >= self.pages() {
            let pages = self.pages();
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("page {page} is not one of our {pages}")));
        }
        // SAFETY: `page < pages`, so the byte lies inside our mapping, which
        // is readable and writable and used by nothing else. Volatile: the
        // compiler may not drop a write that nobody reads back, and this
        // write is the whole point (the page fault it causes maps the RAM).
        unsafe { self.start.add(page * page_size()).write_volatile(1) };
        Ok(())
    }
    // ANCHOR_END: touch

    // ANCHOR: resident_pages
    /// How many of the reserved pages have RAM behind them right now, as
    /// the kernel reports it.
    pub fn resident_pages(&self) -> io::Result<usize> {
        let mut resident = vec![0u8; self.pages()];
        // SAFETY: [start, start + bytes) is our mapping and starts on a page
        // boundary (mmap returns one); `resident` has one byte per page, as
        // mincore writes.
        syscall!(unsafe { libc::mincore(self.start.cast(), self.bytes, resident.as_mut_ptr()) })?;
        // Bit 0 of each byte: the page is resident. The other bits are reserved.
        Ok(resident.iter().filter(|&&flags| flags & 1 == 1).count())
    }
    // ANCHOR_END: resident_pages
}

// ANCHOR: drop
impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: we own this mapping and hand out no references into it
        // (only a `*const u8`, which nothing may use after the drop).
        // `munmap` cannot fail for a range `mmap` returned.
        unsafe { libc::munmap(self.start.cast(), self.bytes) };
    }
}
// ANCHOR_END: drop
