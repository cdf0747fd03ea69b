//! Counting system calls and context switches with `perf stat`, in a run of
//! its own that is not timed.
//!
//! The kernel's tracepoints count each call as it enters, whoever makes it,
//! without slowing the process the way `strace` does (strace stops the
//! traced thread at every call, so a run under strace is a different run:
//! events that would arrive one at a time pile up while the client is held,
//! and one `epoll_wait` then returns a full batch). `perf stat -e
//! syscalls:sys_enter_epoll_wait` only adds a counter increment per call.
//! Still, the counting run is kept apart from the timed runs.
//!
//! `perf` needs the tracepoints (`/sys/kernel/tracing`) and the permission
//! to use them (root, or `kernel.perf_event_paranoid` ≤ -1, or
//! `CAP_PERFMON`). Where it is missing or refused, the figures say so
//! instead of being made up.

use std::process::Command;

/// What one counting run counted, for the whole process (all its threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `epoll_wait`, `epoll_pwait` and `epoll_pwait2` calls: the waits for
    /// readiness, whichever form a runtime uses.
    pub epoll_waits: u64,
    /// `write` calls: the request bytes, and the wake-ups written to an
    /// `eventfd` (mio's `Waker`, tokio's unpark of its driver).
    pub writes: u64,
    /// Every system call.
    pub syscalls: u64,
    /// Times a thread of the process left the CPU (`context-switches`).
    pub context_switches: u64,
}

/// The events given to `perf stat`, and which [`Counts`] field each adds to.
const EVENTS: [(&str, Field); 6] = [
    ("syscalls:sys_enter_epoll_wait", Field::EpollWaits),
    ("syscalls:sys_enter_epoll_pwait", Field::EpollWaits),
    ("syscalls:sys_enter_epoll_pwait2", Field::EpollWaits),
    ("syscalls:sys_enter_write", Field::Writes),
    ("raw_syscalls:sys_enter", Field::Syscalls),
    ("context-switches", Field::ContextSwitches),
];

#[derive(Debug, Clone, Copy)]
enum Field {
    EpollWaits,
    Writes,
    Syscalls,
    ContextSwitches,
}

/// Runs this binary again as `bench-run ARGS` under `perf stat`, and
/// returns what it counted; or why nothing could be counted.
pub fn count(args: &[String]) -> Result<Counts, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = vec![exe.display().to_string(), ch01_os_threads::bench_kit::RUN.to_string()];
    command.extend(args.iter().cloned());
    perf_stat(&command)
}

/// Whether `perf stat` can count the events here (it tries on `true`).
pub fn available() -> Result<(), String> {
    perf_stat(&["true".to_string()]).map(|_| ())
}

/// `perf stat -x, -o FILE -e EVENTS -- command...`, read back from FILE
/// (its own file, so the command's output cannot mix with perf's).
fn perf_stat(command: &[String]) -> Result<Counts, String> {
    let file = std::env::temp_dir().join(format!("showdown-perf-{}-{}.csv", std::process::id(), unique()));
    let events = EVENTS.map(|(event, _)| event).join(",");
    let output = Command::new("perf")
        .args(["stat", "-x", ",", "-o"])
        .arg(&file)
        .args(["-e", &events, "--"])
        .args(command)
        .output()
        .map_err(|e| format!("perf is not available ({e})"))?;
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr.lines().chain(text.lines()).find(|line| !line.trim().is_empty()).unwrap_or("no message");
        return Err(format!("perf stat failed ({}): {why}", output.status));
    }
    parse(&text)
}

/// A number for each temporary file of this process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Reads `perf stat -x,` output: one `value,unit,event,...` line per event.
fn parse(text: &str) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let mut seen = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty() && !line.starts_with('#')) {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(value), Some(event)) = (fields.first(), fields.get(2)) else { continue };
        let Some((_, field)) = EVENTS.iter().find(|(name, _)| name == event) else { continue };
        let value: u64 = value.parse().map_err(|_| format!("perf did not count {event}: {value}"))?;
        match field {
            Field::EpollWaits => counts.epoll_waits += value,
            Field::Writes => counts.writes += value,
            Field::Syscalls => counts.syscalls += value,
            Field::ContextSwitches => counts.context_switches += value,
        }
        seen += 1;
    }
    if seen < EVENTS.len() {
        return Err(format!("perf reported {seen} of the {} events asked for", EVENTS.len()));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv_output_is_read_into_counts() {
        let text = "# started on Tue\n\n\
            17,,syscalls:sys_enter_epoll_wait,1000,100.00,,\n\
            3,,syscalls:sys_enter_epoll_pwait,1000,100.00,,\n\
            0,,syscalls:sys_enter_epoll_pwait2,1000,100.00,,\n\
            250,,syscalls:sys_enter_write,1000,100.00,,\n\
            1200,,raw_syscalls:sys_enter,1000,100.00,,\n\
            40,,context-switches,1000,100.00,,\n";
        let counts = parse(text).unwrap();
        assert_eq!(counts, Counts { epoll_waits: 20, writes: 250, syscalls: 1200, context_switches: 40 });
    }

    #[test]
    fn an_event_perf_could_not_count_is_an_error_not_a_zero() {
        let text = "<not supported>,,syscalls:sys_enter_epoll_wait,0,100.00,,\n";
        assert!(parse(text).unwrap_err().contains("did not count syscalls:sys_enter_epoll_wait"));
        let partial = "17,,syscalls:sys_enter_epoll_wait,1000,100.00,,\n";
        assert!(parse(partial).unwrap_err().contains("1 of the 6 events"));
    }
}
