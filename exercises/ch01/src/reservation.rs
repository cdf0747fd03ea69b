//! Exercise 1.2: reserved is not resident.
//!
//! Chapter 1 measured that a thread's stack is *reserved* in full when the
//! thread starts, while the MMU gives it RAM only page by page as it is
//! touched. See it happen on memory of your own: reserve some pages with
//! `mmap`, touch a few, and ask the kernel with `mincore` which pages have
//! RAM behind them.
//!
//! Check it: `cargo run -p ch01-exercises -- 2`

// Starter code: `todo!()` leaves the arguments unused. Delete this line
// when your code uses them.
#![allow(unused_variables)]

use std::io;

// Chapter 2's helper: the size of one page (`sysconf(_SC_PAGESIZE)`, 4 KiB on
// x86-64).
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
    /// Reserves `pages` pages of private, anonymous memory (no file behind
    /// it), readable and writable. Nothing is touched, so no RAM is used yet.
    ///
    /// Zero pages, or a size that overflows, is an `InvalidInput` error; a
    /// failed `mmap` is its own error (`io::Error::last_os_error()`).
    pub fn new(pages: usize) -> io::Result<Reservation> {
        todo!("mmap `pages` pages; do not write to them")
    }

    /// The first byte of the reservation.
    pub fn as_ptr(&self) -> *const u8 {
        self.start
    }

    /// How many pages are reserved.
    pub fn pages(&self) -> usize {
        self.bytes / page_size()
    }

    /// Writes one byte into page `page` (counting from 0), which makes the
    /// MMU back that page with RAM. A page past the end is an `InvalidInput`
    /// error, never a write outside the mapping.
    pub fn touch(&mut self, page: usize) -> io::Result<()> {
        todo!("write one byte into page `page`, after checking it is ours")
    }

    /// How many of the reserved pages have RAM behind them right now, as
    /// the kernel reports it (`mincore`: one byte per page, bit 0 set when
    /// the page is resident).
    pub fn resident_pages(&self) -> io::Result<usize> {
        todo!("ask mincore about every page of the reservation and count the resident ones")
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Your code: give the pages back (`munmap`). (No `todo!()` here: a
        // panic in `drop` while another panic unwinds aborts the program.)
    }
}
