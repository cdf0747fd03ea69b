//! Printing bench results: the machine they ran on, medians, and a table.
//!
//! Every chapter's `bench` subcommand uses these, so all tables look alike and
//! all say where they were measured (numbers without a machine mean little).

use std::fmt::Write as _;
use std::time::Duration;

/// One line describing this machine: CPU model, logical CPUs, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    // Logical CPUs (hardware threads), as the scheduler sees them.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into());
    let build = if cfg!(debug_assertions) { "debug build: use --release for real numbers" } else { "release build" };
    format!("machine: {cpu}, {cpus} CPUs, Linux {} ({build})", kernel.trim())
}

/// The median of some samples (the middle one after sorting): unlike the
/// mean, one run disturbed by another process does not drag it.
pub fn median<T: Copy + Ord>(samples: &[T]) -> Option<T> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// Runs `f` `runs` times and returns the median result.
pub fn median_of<T: Copy + Ord, E>(runs: usize, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        samples.push(f()?);
    }
    Ok(median(&samples).expect("at least one run"))
}

/// The median of some runs, and the smallest and largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread<T> {
    /// The middle run.
    pub median: T,
    /// The smallest run.
    pub min: T,
    /// The largest run.
    pub max: T,
}

/// Runs `f` `runs` times and returns the median, min and max: for rows that
/// swing from run to run, where the median alone would hide it.
pub fn spread_of<T: Copy + Ord, E>(runs: usize, mut f: impl FnMut() -> Result<T, E>) -> Result<Spread<T>, E> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        samples.push(f()?);
    }
    samples.sort_unstable();
    Ok(Spread { median: samples[samples.len() / 2], min: samples[0], max: samples[samples.len() - 1] })
}

/// A duration with a unit that fits: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    match ns {
        n if n < 1_000.0 => format!("{n:.0} ns"),
        n if n < 1_000_000.0 => format!("{:.1} µs", n / 1e3),
        n if n < 1_000_000_000.0 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

/// A byte count with a binary unit: `512 B`, `64.0 KiB`, `3.2 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n < 1024.0 => format!("{n:.0} B"),
        n if n < 1024.0 * 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n if n < 1024.0 * 1024.0 * 1024.0 => format!("{:.1} MiB", n / (1024.0 * 1024.0)),
        n => format!("{:.2} GiB", n / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// `text` folded into lines of at most `width` characters (a word longer
/// than that gets a line of its own), each ending in a newline; lines after
/// the first start with `indent`. For the legends and notes under a table.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let start = if out.is_empty() { "" } else { indent };
        if !line.is_empty() && start.len() + line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(start);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(if out.is_empty() { "" } else { indent });
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A plain-text table with aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The column titles.
    header: Vec<String>,
    /// The rows, one cell per column.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: ToString>(header: &[S]) -> Table {
        Table { header: header.iter().map(ToString::to_string).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells print empty, extra cells are kept).
    pub fn row<S: ToString>(&mut self, cells: &[S]) -> &mut Table {
        self.rows.push(cells.iter().map(ToString::to_string).collect());
        self
    }

    /// Renders the table. Columns of numbers are right-aligned (so the digits
    /// line up), columns of words left-aligned.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        let cell = |row: &[String], i: usize| row.get(i).map_or(String::new(), Clone::clone);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, width) in widths.iter_mut().enumerate() {
                *width = (*width).max(cell(row, i).chars().count());
            }
        }
        let numeric: Vec<bool> = (0..columns)
            .map(|i| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|row| {
                        cell(row, i).trim_start_matches(['-', '~', '≈']).starts_with(|c: char| c.is_ascii_digit())
                    })
            })
            .collect();
        let mut out = String::new();
        let mut line = |row: &[String]| {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let value = cell(row, i);
                let pad = " ".repeat(width - value.chars().count());
                let sep = if i == 0 { "" } else { " | " };
                if numeric[i] {
                    let _ = write!(text, "{sep}{pad}{value}");
                } else {
                    let _ = write!(text, "{sep}{value}{pad}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.header);
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
        for row in &self.rows {
            line(row);
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["what", "time"]);
        table.row(&["spawn", "12.0 µs"]).row(&["switch", "3 ns"]);
        assert_eq!(table.render(), "what   |    time\n------ | -------\nspawn  | 12.0 µs\nswitch |    3 ns\n");
        let mut words = Table::new(&["what", "why"]);
        words.row(&["a", "because"]).row(&["bb", "so"]);
        assert_eq!(words.render(), "what | why\n---- | -------\na    | because\nbb   | so\n");
    }

    #[test]
    fn wrap_keeps_lines_within_the_width() {
        let text = "one two three four five six seven eight nine ten";
        assert_eq!(wrap(text, 14, "  "), "one two three\n  four five\n  six seven\n  eight nine\n  ten\n");
        assert_eq!(wrap("short", 100, "  "), "short\n");
        assert_eq!(wrap("", 10, ""), "");
        assert_eq!(wrap("averyveryverylongword x", 5, ""), "averyveryverylongword\nx\n");
    }

    #[test]
    fn units_and_medians() {
        assert_eq!(duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(duration(Duration::from_micros(12_300)), "12.30 ms");
        assert_eq!(bytes(64 * 1024), "64.0 KiB");
        assert_eq!(median(&[5, 1, 3]), Some(3));
        assert_eq!(median::<u32>(&[]), None);
        let mut runs = [9, 1, 5].into_iter();
        let spread = spread_of(3, || runs.next().ok_or("no more runs")).unwrap();
        assert_eq!(spread, Spread { median: 5, min: 1, max: 9 });
    }
}
