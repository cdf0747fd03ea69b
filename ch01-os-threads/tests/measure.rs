//! The measurements return sane values. (How fast is for `bench`, not tests.)

use std::io;
use std::time::Duration;

use ch01_os_threads::measure::{self, LimitReason, ProcStatus};

const STACK: usize = 64 * 1024;

#[test]
fn proc_status_and_cpu_time_are_read() -> io::Result<()> {
    let status = ProcStatus::read()?;
    assert!(status.resident_bytes > 0);
    assert!(status.virtual_bytes >= status.resident_bytes, "{status:?}");
    assert!(status.peak_resident_bytes >= status.resident_bytes, "{status:?}");
    assert!(status.threads >= 1);
    measure::reset_peak_rss()?;
    // Some real work, so the process has used measurable CPU time.
    let work: u64 = (0..2_000_000u64).map(std::hint::black_box).sum();
    assert!(work > 0);
    assert!(measure::cpu_time()? > Duration::ZERO);
    assert!(measure::map_count()? > 0);
    assert!(measure::max_map_count()? > 0);
    Ok(())
}

// One test, so that its threads are not counted in another test's memory.
#[test]
fn thread_costs_are_positive_and_memory_is_mostly_virtual() -> io::Result<()> {
    assert!(measure::spawn_join(20, STACK)? > Duration::ZERO);
    assert!(measure::ping_pong(200, false)? > Duration::ZERO);
    assert!(measure::ping_pong(200, true)? > Duration::ZERO);

    let memory = measure::memory_per_parked_thread(100, STACK)?;
    assert_eq!(memory.threads, 100);
    // Each thread reserves at least its stack...
    assert!(memory.virtual_per_thread >= STACK as u64, "{memory:?}");
    // ...but touches only part of it.
    assert!(memory.virtual_per_thread >= memory.resident_per_thread, "{memory:?}");

    let limit = measure::max_threads(300, STACK)?;
    assert_eq!(limit.held, 300);
    assert!(matches!(limit.stopped_because, LimitReason::Cap), "{limit:?}");
    Ok(())
}
