//! Printing bench results: the machine they ran on, medians, and a table.
//!
//! Every chapter's `bench` subcommand uses these, so all tables look alike and
//! all say where they were measured (numbers without a machine mean little).
//!
//! With `--json`, a bench prints the same figures as one JSON object per line
//! ([`Figure`], gathered in [`Figures`]) instead of a table, so that tables and
//! charts elsewhere (the workspace's `bench/` showdown, the book) are
//! generated from measured numbers, never typed again by hand.

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

/// Today's date in UTC, `YYYY-MM-DD`, for the caption under a table.
pub fn date_utc() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_date((seconds / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The calendar date `days` days after 1970-01-01 (proleptic Gregorian).
///
/// Counted in 400-year eras, which always hold 146 097 days, with years
/// starting on 1 March so that the leap day is the last day of a year.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

/// One figure a bench measured, as `--json` prints it: one JSON object per
/// line, `{"chapter":"ch02","metric":"yield round trip","value":18.6,"unit":"ns"}`,
/// with `"min"` and `"max"` when the value is the median of repeated runs
/// and `"note"` for words that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Which bench measured it: `ch01` … `ch05`, or `showdown`.
    pub chapter: String,
    /// What was measured, in words (the table's row, and column if any).
    pub metric: String,
    /// The number: the median where runs were repeated.
    pub value: f64,
    /// Its unit: `ns` for times, `B` for bytes, `count`, `CPUs`, `x` for a ratio.
    pub unit: String,
    /// The smallest and largest of the repeated runs.
    pub range: Option<(f64, f64)>,
    /// Words that go with the number (why a run stopped, the machine line).
    pub note: Option<String>,
}

impl Figure {
    /// A figure without a range or a note.
    pub fn new(chapter: &str, metric: &str, value: f64, unit: &str) -> Figure {
        Figure {
            chapter: chapter.to_string(),
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
            range: None,
            note: None,
        }
    }

    /// A time, in nanoseconds.
    pub fn time(chapter: &str, metric: &str, time: Duration) -> Figure {
        Figure::new(chapter, metric, time.as_nanos() as f64, "ns")
    }

    /// The median of repeated timed runs, with their range, in nanoseconds.
    pub fn times(chapter: &str, metric: &str, spread: Spread<Duration>) -> Figure {
        let ns = |d: Duration| d.as_nanos() as f64;
        Figure { range: Some((ns(spread.min), ns(spread.max))), ..Figure::time(chapter, metric, spread.median) }
    }

    /// A byte count.
    pub fn bytes(chapter: &str, metric: &str, bytes: u64) -> Figure {
        Figure::new(chapter, metric, bytes as f64, "B")
    }

    /// The machine the figures were measured on: the CPU count as the value,
    /// the whole [`machine`] line and the date as the note. Benches print it first.
    pub fn machine(chapter: &str) -> Figure {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let note = format!("{}; {}", machine(), date_utc());
        Figure { note: Some(note), ..Figure::new(chapter, "machine", cpus as f64, "CPUs") }
    }

    /// The same figure with `note` attached.
    pub fn with_note(self, note: impl Into<String>) -> Figure {
        Figure { note: Some(note.into()), ..self }
    }

    /// The figure as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        let mut out = format!(
            "{{\"chapter\":{},\"metric\":{},\"value\":{},\"unit\":{}",
            json_string(&self.chapter),
            json_string(&self.metric),
            json_number(self.value),
            json_string(&self.unit)
        );
        if let Some((min, max)) = self.range {
            let _ = write!(out, ",\"min\":{},\"max\":{}", json_number(min), json_number(max));
        }
        if let Some(note) = &self.note {
            let _ = write!(out, ",\"note\":{}", json_string(note));
        }
        out.push('}');
        out
    }
}

/// A JSON number: JSON has no NaN or infinity, so those become `null`.
fn json_number(value: f64) -> String {
    if value.is_finite() { format!("{value}") } else { "null".to_string() }
}

/// A JSON string: quoted, with `"`, `\\` and control characters escaped.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The figures of one bench run, for `--json`: the machine first, then each
/// figure in the order it was measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Which bench: `ch01` … `ch05`, `showdown`.
    chapter: String,
    /// What it measured so far.
    list: Vec<Figure>,
}

impl Figures {
    /// An empty list for `chapter`, starting with [`Figure::machine`].
    pub fn new(chapter: &str) -> Figures {
        Figures { chapter: chapter.to_string(), list: vec![Figure::machine(chapter)] }
    }

    /// Which bench these figures belong to.
    pub fn chapter(&self) -> &str {
        &self.chapter
    }

    /// Adds a figure.
    pub fn push(&mut self, figure: Figure) -> &mut Figures {
        self.list.push(figure);
        self
    }

    /// Adds a time ([`Figure::time`]) of this chapter.
    pub fn time(&mut self, metric: &str, time: Duration) -> &mut Figures {
        let figure = Figure::time(&self.chapter, metric, time);
        self.push(figure)
    }

    /// Adds a median with its range ([`Figure::times`]) of this chapter.
    pub fn times(&mut self, metric: &str, spread: Spread<Duration>) -> &mut Figures {
        let figure = Figure::times(&self.chapter, metric, spread);
        self.push(figure)
    }

    /// Adds a byte count of this chapter.
    pub fn bytes(&mut self, metric: &str, bytes: u64) -> &mut Figures {
        let figure = Figure::bytes(&self.chapter, metric, bytes);
        self.push(figure)
    }

    /// Adds any other number of this chapter.
    pub fn number(&mut self, metric: &str, value: f64, unit: &str) -> &mut Figures {
        let figure = Figure::new(&self.chapter, metric, value, unit);
        self.push(figure)
    }

    /// Everything gathered so far.
    pub fn list(&self) -> &[Figure] {
        &self.list
    }

    /// All the figures, one JSON object per line.
    pub fn to_json_lines(&self) -> String {
        self.list.iter().map(|figure| figure.to_json() + "\n").collect()
    }
}

/// Splits `--json` off a bench's arguments: whether it was given, and the
/// other arguments in order.
pub fn json_flag(args: &[String]) -> (bool, Vec<String>) {
    let rest: Vec<String> = args.iter().filter(|arg| *arg != "--json").cloned().collect();
    (rest.len() < args.len(), rest)
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
    fn figures_print_as_json_lines() {
        let spread =
            Spread { median: Duration::from_nanos(18), min: Duration::from_nanos(17), max: Duration::from_nanos(20) };
        let figure = Figure::times("ch02", "yield \"round\" trip\\", spread).with_note("two\nlines\u{1}");
        assert_eq!(
            figure.to_json(),
            r#"{"chapter":"ch02","metric":"yield \"round\" trip\\","value":18,"unit":"ns","min":17,"max":20,"note":"two\nlines\u0001"}"#
        );
        assert_eq!(
            Figure::new("ch05", "ratio", 0.5, "x").to_json(),
            r#"{"chapter":"ch05","metric":"ratio","value":0.5,"unit":"x"}"#
        );
        assert_eq!(Figure::new("ch05", "nothing", f64::NAN, "x").value.to_string(), "NaN");
        assert!(Figure::new("ch05", "nothing", f64::NAN, "x").to_json().contains(r#""value":null"#));
        let mut figures = Figures::new("ch01");
        figures.bytes("memory", 4096).time("spawn", Duration::from_micros(12));
        let text = figures.to_json_lines();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with(r#"{"chapter":"ch01","metric":"machine","value":"#), "{}", lines[0]);
        assert!(lines[0].contains(r#""unit":"CPUs","note":"machine: "#), "{}", lines[0]);
        assert_eq!(lines[1], r#"{"chapter":"ch01","metric":"memory","value":4096,"unit":"B"}"#);
        assert_eq!(lines[2], r#"{"chapter":"ch01","metric":"spawn","value":12000,"unit":"ns"}"#);
    }

    #[test]
    fn dates_count_leap_years() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29)); // 2000 is a leap year (divisible by 400)
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_513), (2026, 3, 1));
        assert_eq!(date_utc().len(), 10);
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
