//! The check of exercise 1.2: the kernel itself (`mincore`) says which pages
//! of the reservation have RAM behind them, and whether the range is still
//! mapped after the drop.

use std::io;

use ch01_exercises::reservation::Reservation;
use ch02_green_threads::stack::page_size;
use exercise_harness::{Verdict, ensure};

/// How many pages to reserve: 256 KiB, well below 2 MiB, so the kernel
/// cannot back it with one transparent huge page at the first touch.
const PAGES: usize = 64;

/// The pages the check touches (one twice).
const TOUCHED: [usize; 4] = [0, 9, 63, 9];

pub fn check() -> Verdict {
    ensure!(Reservation::new(0).is_err(), "Reservation::new(0) succeeded; zero pages should be an InvalidInput error");

    let mut reservation = Reservation::new(PAGES).map_err(|e| format!("Reservation::new({PAGES}) failed: {e}"))?;
    let start = reservation.as_ptr();
    ensure!(
        !start.is_null() && start.addr() % page_size() == 0,
        "as_ptr() is {start:?}, which is not the start of a page: keep the address mmap returned"
    );
    ensure!(reservation.pages() == PAGES, "pages() is {}; {PAGES} were reserved", reservation.pages());
    ensure!(
        is_mapped(start, PAGES).map_err(|e| format!("cannot ask the kernel about the reservation: {e}"))?,
        "the kernel knows no mapping at {start:?}: did new() really mmap?"
    );
    let resident = count_resident(&reservation)?;
    ensure!(
        resident == 0,
        "{resident} of {PAGES} fresh pages already have RAM behind them: new() must not write to them \
         (mmap's pages read as zero already; the MMU maps RAM at the first touch)"
    );

    for (i, &page) in TOUCHED.iter().enumerate() {
        reservation.touch(page).map_err(|e| format!("touch({page}) failed: {e}"))?;
        let mut distinct = TOUCHED[..=i].to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let resident = count_resident(&reservation)?;
        ensure!(
            resident == distinct.len(),
            "after touching pages {:?}, {resident} page(s) are resident; expected {}: one per page written, \
             and writing a page twice does not map it twice",
            &TOUCHED[..=i],
            distinct.len()
        );
    }
    let outside = reservation.touch(PAGES);
    ensure!(
        outside.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::InvalidInput),
        "touch({PAGES}) returned {outside:?}; page {PAGES} is past the end of {PAGES} pages (they count from 0), \
         so it must be an InvalidInput error"
    );

    drop(reservation);
    let still_mapped = is_mapped(start, PAGES).map_err(|e| format!("cannot ask the kernel about the range: {e}"))?;
    ensure!(
        !still_mapped,
        "after the Reservation was dropped, its {PAGES} pages are still mapped: Drop must give them back with munmap \
         (otherwise every Reservation leaks its address space)"
    );
    Ok(())
}

/// The learner's count, with the error made readable.
fn count_resident(reservation: &Reservation) -> Result<usize, String> {
    reservation.resident_pages().map_err(|e| format!("resident_pages() failed: {e}"))
}

/// Whether every page of `[start, start + pages)` is mapped: `mincore`
/// fails with `ENOMEM` when part of the range is not.
fn is_mapped(start: *const u8, pages: usize) -> io::Result<bool> {
    let mut flags = vec![0u8; pages];
    // SAFETY: mincore only reads the page tables for the range (it never
    // touches the memory itself) and writes `pages` bytes into `flags`,
    // which has room for them; the start is page-aligned (checked above).
    let result = unsafe { libc::mincore(start.cast_mut().cast(), pages * page_size(), flags.as_mut_ptr()) };
    match result {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOMEM) => Ok(false),
            e => Err(e),
        },
    }
}
