//! From `results.jsonl` to the tables of the Showdown page: the showdown per
//! N, the microbenchmarks, the fairness rows, the system-call counts, and
//! the targets with their verdicts. Nothing here measures; everything comes
//! from the figures, so `showdown render FILE` gives the same page as the
//! run that wrote FILE.
//!
//! Each table shows medians; the ranges (smallest–largest run) are in a
//! second table under it, folded away, so that a cell holds one number and
//! the tables fit a page.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use ch01_os_threads::report;
use serde::Deserialize;

use crate::micro::{CH02, CH05, CH05_MULTI, CH05_OWN, LOCAL_POOL, SMOL_LOCAL, TOKIO, TOKIO_MULTI};
use crate::{chart, prose};

/// The workloads and measures of the metric names (`workload / contender /
/// measure`): written by `run.rs`, read back here and in `prose.rs`.
pub mod name {
    /// Switch or yield round trip.
    pub const ROUND_TRIP: &str = "round trip";
    /// Ping-pong between two spawned tasks.
    pub const PING_PONG: &str = "ping-pong";
    /// Ping-pong with the ping side in the `block_on` future.
    pub const PING_PONG_FROM_BLOCK_ON: &str = "ping-pong from block_on";
    /// Spawn + complete, per task.
    pub const SPAWN: &str = "spawn + complete";
    /// Heap allocations per spawned task.
    pub const ALLOCATIONS: &str = "allocations per spawn";
    /// Resident memory per idle task.
    pub const IDLE_MEMORY: &str = "idle task memory";
    /// Timer lateness, with its four measures and the starved runs.
    pub const LATENESS: &str = "timer lateness";
    /// ... the timer alone, median of a run's sleeps.
    pub const ALONE_MEDIAN: &str = "alone, median";
    /// ... the timer alone, the latest sleep of a run.
    pub const ALONE_MAX: &str = "alone, max";
    /// ... beside a yielding task, median of a run's sleeps.
    pub const BESIDE_MEDIAN: &str = "beside a yielding task, median";
    /// ... beside a yielding task, the latest sleep of a run.
    pub const BESIDE_MAX: &str = "beside a yielding task, max";
    /// ... runs in which the yielding task reached its limit.
    pub const STARVED: &str = "starved runs";
    /// Flooding clients against a server.
    pub const FLOODING: &str = "flooding";
    /// ... how long the other client's GET took.
    pub const ANSWER_TIME: &str = "answer time";
    /// ... runs in which it got no answer within the limit.
    pub const UNANSWERED: &str = "unanswered runs";
    /// System calls of one GETs run: `system calls at 10000 GETs / who / measure`.
    pub const CALLS_AT: &str = "system calls at";
    /// System calls per ping-pong round trip.
    pub const CALLS_PER_PING_PONG: &str = "system calls per ping-pong round trip";
    /// This machine's limits (`limits / all / open files`).
    pub const LIMITS: &str = "limits / all";
    /// Why no system calls were counted, if they were not.
    pub const PERF: &str = "system calls / all / perf";
    /// How long the whole run took.
    pub const ELAPSED: &str = "run / all / elapsed";
}

/// One figure as read back from a JSON line (its `chapter` is always
/// `showdown` here, so it is not kept).
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    /// `workload / contender / measure`, or `machine`.
    pub metric: String,
    /// The median (`null`: not measured, the note says why).
    pub value: Option<f64>,
    /// `ns`, `B`, `count`, `CPUs`.
    pub unit: String,
    /// The smallest run.
    pub min: Option<f64>,
    /// The largest run.
    pub max: Option<f64>,
    /// Words that go with the number.
    pub note: Option<String>,
}

/// All the figures of one run.
#[derive(Debug, Clone)]
pub struct Results {
    /// In the order they were measured.
    pub rows: Vec<Row>,
}

impl Results {
    /// Reads one JSON object per line (blank lines skipped).
    pub fn parse(text: &str) -> anyhow::Result<Results> {
        let rows = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("line {} is not a figure", i + 1)))
            .collect::<anyhow::Result<Vec<Row>>>()?;
        Ok(Results { rows })
    }

    /// The figure named `metric`.
    pub fn get(&self, metric: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.metric == metric)
    }

    /// The value of the figure named `metric`, if it was measured.
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.get(metric)?.value
    }

    /// The machine line and the date, as the run printed them.
    pub fn machine(&self) -> String {
        self.get("machine").and_then(|row| row.note.clone()).unwrap_or_else(|| "machine: unknown".into())
    }

    /// The contenders of `workload`, in the order they were measured.
    pub fn contenders(&self, workload: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for row in &self.rows {
            if let Some(rest) = row.metric.strip_prefix(workload).and_then(|rest| rest.strip_prefix(" / ")) {
                let who = rest.split(" / ").next().unwrap_or(rest);
                if who != "all" && !found.iter().any(|f| f == who) {
                    found.push(who.to_string());
                }
            }
        }
        found
    }

    /// The N of the showdown that were run, smallest first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self
            .rows
            .iter()
            .filter_map(|row| row.metric.strip_suffix(" / wall")?.split(" GETs / ").next()?.parse().ok())
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// The N of the sleeps microbenchmark, if it ran.
    pub fn sleepers(&self) -> Option<usize> {
        self.rows.iter().find_map(|row| row.metric.split(" sleeps wall / ").next()?.parse().ok())
    }

    /// The runs per cell, from the run's own figure.
    pub fn runs(&self) -> usize {
        self.value("GETs / all / runs").map_or(5, |runs| runs as usize)
    }
}

/// A value in its unit, to three significant digits: `5.3 ns`, `148 ms`,
/// `58.8 ms`, `1.52 s`, `4.3 KiB`, `2`, `1.25`.
pub fn amount(value: f64, unit: &str) -> String {
    let three = |x: f64| match x {
        x if x >= 100.0 => format!("{x:.0}"),
        x if x >= 10.0 => format!("{x:.1}"),
        x => format!("{x:.2}"),
    };
    match unit {
        "ns" if value < 100.0 => format!("{value:.1} ns"),
        "ns" if value < 1e3 => format!("{value:.0} ns"),
        "ns" if value < 1e6 => format!("{} µs", three(value / 1e3)),
        "ns" if value < 1e9 => format!("{} ms", three(value / 1e6)),
        "ns" => format!("{:.2} s", value / 1e9),
        "B" => report::bytes(value.round() as u64),
        _ if value.fract() != 0.0 && value < 100.0 => format!("{value:.2}"),
        _ => grouped(value),
    }
}

/// A table cell that never breaks between a number and its unit (a
/// no-break space), so that a narrow column wraps its words, not `1.01 s`.
fn unbroken(text: String) -> String {
    text.replace(' ', "\u{a0}")
}

/// A whole number as the book writes it: `65 530`, `10 000`, `950`.
pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// Names joined for a sentence: `A`, `A and B`, `A, B and C`, each in
/// italics (the contenders' names hold commas of their own).
pub fn names<S: AsRef<str>>(items: &[S]) -> String {
    let italic: Vec<String> = items.iter().map(|item| format!("*{}*", item.as_ref())).collect();
    match italic.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// A median cell: the value, or a dash where there is none.
fn median_cell(row: Option<&Row>) -> String {
    match row.and_then(|row| row.value.map(|value| amount(value, &row.unit))) {
        Some(text) => unbroken(text),
        None => "—".into(),
    }
}

/// A range cell: `50.8–53.6 ns` (the unit once when both ends share it),
/// or the one value when the runs agree.
fn range_cell(row: Option<&Row>) -> String {
    let Some(row) = row else { return "—".into() };
    let (Some(min), Some(max)) = (row.min, row.max) else { return median_cell(Some(row)) };
    let (low, high) = (amount(min, &row.unit), amount(max, &row.unit));
    if low == high {
        return unbroken(low);
    }
    unbroken(match (low.rsplit_once(' '), high.rsplit_once(' ')) {
        (Some((low_number, low_unit)), Some((_, high_unit))) if low_unit == high_unit => format!("{low_number}–{high}"),
        _ => format!("{low}–{high}"),
    })
}

/// A Markdown table.
fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// `body` folded under a line that says what it is (HTML `<details>`,
/// which mdBook renders; the blank lines let the Markdown inside render).
fn folded(summary: &str, body: &str) -> String {
    format!("<details><summary>{summary}</summary>\n\n{body}\n</details>\n")
}

/// A medians table and, folded under it, the same rows' ranges.
/// `rows` pairs each row's name with its figures, one per column.
fn medians_and_ranges(corner: &str, columns: &[&str], rows: &[(String, Vec<Option<&Row>>)], runs: usize) -> String {
    let header: Vec<String> = std::iter::once(corner).chain(columns.iter().copied()).map(String::from).collect();
    let line = |cell: fn(Option<&Row>) -> String| -> Vec<Vec<String>> {
        rows.iter()
            .map(|(who, cells)| std::iter::once(who.clone()).chain(cells.iter().map(|c| cell(*c))).collect())
            .collect()
    };
    let medians = table(&header, &line(median_cell));
    let ranges = table(&header, &line(range_cell));
    format!("{medians}\n{}", folded(&format!("Smallest–largest of the {runs} runs"), &ranges))
}

/// The caption line every table and the chart carry.
pub fn caption(results: &Results) -> String {
    format!(
        "Measured on {}. Medians of {} runs, the contenders' runs interleaved (one run of each in turn).",
        results.machine(),
        results.runs()
    )
}

/// The showdown tables, one per N.
pub fn gets_table(results: &Results) -> String {
    let mut out = String::new();
    let delay = results.value("GETs / all / delay").map_or(String::new(), |ns| amount(ns, "ns"));
    let columns = ["wall", "CPU time", "peak RSS", "memory per request"];
    for n in results.sizes() {
        let workload = format!("{n} GETs");
        let _ = writeln!(out, "**N = {} concurrent GETs**, each answered after {delay}:\n", grouped(n as f64));
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let mut answered = Vec::new();
        for who in results.contenders(&workload) {
            let get = |measure: &str| results.get(&format!("{workload} / {who} / {measure}"));
            if let Some(wall) = get("wall").filter(|row| row.value.is_none()) {
                notes.push(format!("{who}: {}", wall.note.clone().unwrap_or_else(|| "not measured".into())));
            }
            if let Some(note) = get("answered").and_then(|row| row.note.clone()) {
                notes.push(format!("{who}: {note}"));
            }
            match get("answered").and_then(|row| row.value) {
                Some(a) if a as usize == n => {}
                Some(a) => answered.push(format!("{who} {a:.0}/{n}")),
                None => {}
            }
            rows.push((who.clone(), columns.iter().map(|measure| get(measure)).collect()));
        }
        out.push_str(&medians_and_ranges("approach", &columns, &rows, results.runs()));
        let answers = if answered.is_empty() {
            format!("Every approach that ran got all {n} answers in every run.")
        } else {
            format!("Fewer answers than requests (worst run): {}.", answered.join("; "))
        };
        let _ = writeln!(out, "\n{answers}");
        for note in notes {
            let _ = writeln!(out, "\n*{}*", note.replace('*', "\\*"));
        }
        out.push('\n');
    }
    out
}

/// The microbenchmark tables, one row per contender: the time of one
/// operation, then memory and allocations (two tables, so each fits the
/// page's width).
pub fn micro_table(results: &Results) -> String {
    let sleepers = results.sleepers().unwrap_or(0);
    let sleeps = format!("{sleepers} sleeps wall");
    let sleeps_title = format!("{} sleeps, wall", grouped(sleepers as f64));
    let time = [
        (name::ROUND_TRIP, "switch / yield round trip"),
        (name::PING_PONG, "ping-pong, two tasks"),
        (name::PING_PONG_FROM_BLOCK_ON, "ping-pong from block_on"),
        (name::SPAWN, "spawn + complete, per task"),
    ];
    let memory = [
        (name::ALLOCATIONS, "allocations per spawned task"),
        (name::IDLE_MEMORY, "memory per idle task"),
        (sleeps.as_str(), sleeps_title.as_str()),
    ];
    let runs = results.runs();
    format!(
        "**Time per operation**:\n\n{}\n**Memory and allocations**:\n\n{}",
        contender_table(results, &time, runs),
        contender_table(results, &memory, runs)
    )
}

/// A table with a row per contender of any of `workloads` (`workload /
/// contender` figures), a column per workload.
fn contender_table(results: &Results, workloads: &[(&str, &str)], runs: usize) -> String {
    let mut contenders: Vec<String> = Vec::new();
    for (workload, _) in workloads {
        for who in results.contenders(workload) {
            if !contenders.contains(&who) {
                contenders.push(who);
            }
        }
    }
    let rows: Vec<(String, Vec<Option<&Row>>)> = contenders
        .into_iter()
        .map(|who| {
            let cells = workloads.iter().map(|(workload, _)| results.get(&format!("{workload} / {who}"))).collect();
            (who, cells)
        })
        .collect();
    let titles: Vec<&str> = workloads.iter().map(|(_, title)| *title).collect();
    medians_and_ranges("contender", &titles, &rows, runs)
}

/// The fairness tables: timer lateness, then flooding clients.
pub fn fairness_table(results: &Results) -> String {
    let mut out = String::new();
    let workload = name::LATENESS;
    let timer = results.value(&format!("{workload} / all / timer")).map_or("a".into(), |ns| amount(ns, "ns"));
    let sleeps = results.value(&format!("{workload} / all / sleeps")).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "**Timer lateness**: how late a {timer} sleep ends ({sleeps:.0} sleeps in a row per run), alone and beside \
         a task that yields in a loop:\n"
    );
    let measures = [name::ALONE_MEDIAN, name::ALONE_MAX, name::BESIDE_MEDIAN, name::BESIDE_MAX];
    let mut notes = Vec::new();
    let rows: Vec<(String, Vec<Option<&Row>>)> = results
        .contenders(workload)
        .into_iter()
        .map(|who| {
            if let Some(note) =
                results.get(&format!("{workload} / {who} / {}", name::STARVED)).and_then(|r| r.note.clone())
            {
                notes.push(format!("{who}: starved: {note}."));
            }
            let cells = measures.iter().map(|m| results.get(&format!("{workload} / {who} / {m}"))).collect();
            (who, cells)
        })
        .collect();
    out.push_str(&medians_and_ranges("runtime", &measures, &rows, results.runs()));
    for note in notes {
        let _ = writeln!(out, "\n*{note}*");
    }
    let workload = name::FLOODING;
    let servers = results.contenders(workload);
    if !servers.is_empty() {
        let flooders = results.value(&format!("{workload} / all / flooders")).unwrap_or(0.0);
        let limit = results.value(&format!("{workload} / all / limit")).map_or(String::new(), |ns| amount(ns, "ns"));
        let _ = writeln!(
            out,
            "\n**Flooding clients**: {flooders:.0} clients send a request and keep writing bytes during their \
             delay; how long another client's `GET /0/hi` waits for its answer (at most {limit}):\n"
        );
        let header = ["server", "answered after", "smallest–largest", "runs with no answer"].map(String::from);
        let lines: Vec<Vec<String>> = servers
            .iter()
            .map(|who| {
                let answer = results.get(&format!("{workload} / {who} / {}", name::ANSWER_TIME));
                let unanswered = results.value(&format!("{workload} / {who} / {}", name::UNANSWERED)).unwrap_or(0.0);
                let median = match answer {
                    Some(row) if row.value.is_none() => format!("no answer within {limit}"),
                    other => median_cell(other),
                };
                // The range spans the runs that got an answer; a run that
                // got none is later than all of them.
                let range = match answer.and_then(|row| row.min.zip(row.max).map(|_| row)) {
                    Some(row) if unanswered > 0.0 => format!("{}–no answer", amount(row.min.unwrap_or(0.0), &row.unit)),
                    Some(row) => range_cell(Some(row)),
                    None => "—".into(),
                };
                vec![who.clone(), median, range, format!("{unanswered:.0} of {}", results.runs())]
            })
            .collect();
        out.push_str(&table(&header, &lines));
    }
    out
}

/// The system-call counts: the GETs at the largest N, and ping-pong.
pub fn syscalls_table(results: &Results) -> String {
    let mut out = String::new();
    if let Some(row) = results.get(name::PERF) {
        let why = row.note.clone().unwrap_or_default();
        let _ = writeln!(out, "*Not counted on this machine: {why}.*");
        return out;
    }
    let measures = ["epoll waits", "writes", "system calls", "context switches"];
    if let Some(n) = results.sizes().last() {
        let workload = format!("{} {n} GETs", name::CALLS_AT);
        let who = results.contenders(&workload);
        if !who.is_empty() {
            let _ = writeln!(
                out,
                "**{} concurrent GETs**, one counting run each, the whole client process:\n",
                grouped(*n as f64)
            );
            let header: Vec<String> = std::iter::once("approach").chain(measures).map(String::from).collect();
            let lines: Vec<Vec<String>> = who
                .iter()
                .map(|who| {
                    let cells = measures.iter().map(|m| counted(results.get(&format!("{workload} / {who} / {m}"))));
                    std::iter::once(who.clone()).chain(cells).collect()
                })
                .collect();
            out.push_str(&table(&header, &lines));
        }
    }
    let workload = name::CALLS_PER_PING_PONG;
    let who = results.contenders(workload);
    if !who.is_empty() {
        let _ =
            writeln!(out, "\n**Per ping-pong round trip**, two spawned tasks, and with the ping side in `block_on`:\n");
        let columns = [
            ("epoll waits, tasks", "epoll waits, two tasks"),
            ("writes, tasks", "writes, two tasks"),
            ("epoll waits, block_on", "epoll waits, from block_on"),
            ("writes, block_on", "writes, from block_on"),
        ];
        let header: Vec<String> =
            std::iter::once("executor").chain(columns.map(|(_, title)| title)).map(String::from).collect();
        let per_trip = |row: Option<&Row>| match row.and_then(|row| row.value) {
            Some(value) => format!("{value:.2}"),
            None => counted(row),
        };
        let lines: Vec<Vec<String>> = who
            .iter()
            .map(|who| {
                let cells = columns.iter().map(|(m, _)| per_trip(results.get(&format!("{workload} / {who} / {m}"))));
                std::iter::once(who.clone()).chain(cells).collect()
            })
            .collect();
        out.push_str(&table(&header, &lines));
    }
    out
}

/// A counted value, or why it was not counted.
fn counted(row: Option<&Row>) -> String {
    match row {
        Some(row) if row.value.is_none() => row.note.clone().map_or("—".into(), |why| format!("not counted: {why}")),
        other => median_cell(other),
    }
}

/// One target: `ours` must be at most `factor` times `peer`.
pub struct Target {
    /// What it says, in words.
    pub what: String,
    /// Our figure's metric.
    pub ours: String,
    /// The peer's figure's metric.
    pub peer: String,
    /// How much above the peer still meets it.
    pub factor: f64,
    /// A metric whose non-zero value means ours failed outright (starved
    /// runs), if any.
    pub failed_if: Option<String>,
}

/// The verdict on one target.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A figure is missing.
    NotMeasured,
    /// Ours failed outright in some runs (the note says how).
    Failed(String),
    /// `ratio` (ours / peer) within the factor; `close` when the two ranges
    /// overlap (so another run may well give the other verdict).
    Met { ratio: f64, close: bool },
    /// Over the factor, by `over` (0.13 = 13%).
    Missed { ratio: f64, over: f64, close: bool },
}

impl Target {
    /// The verdict from `results`.
    pub fn verdict(&self, results: &Results) -> Verdict {
        if let Some(failed) = &self.failed_if
            && let Some(row) = results.get(failed).filter(|row| row.value.unwrap_or(0.0) > 0.0)
        {
            return Verdict::Failed(row.note.clone().unwrap_or_else(|| "failed".into()));
        }
        let (Some(ours), Some(peer)) = (results.get(&self.ours), results.get(&self.peer)) else {
            return Verdict::NotMeasured;
        };
        let (Some(o), Some(p)) = (ours.value, peer.value) else { return Verdict::NotMeasured };
        let ratio = o / p;
        // Overlap of [our min, our max] with [peer min, peer max] × factor.
        let bounds = |row: &Row, value: f64| (row.min.unwrap_or(value), row.max.unwrap_or(value));
        let ((our_low, our_high), (peer_low, peer_high)) = (bounds(ours, o), bounds(peer, p));
        let close = our_low <= peer_high * self.factor && peer_low * self.factor <= our_high;
        if ratio <= self.factor {
            Verdict::Met { ratio, close }
        } else {
            Verdict::Missed { ratio, over: ratio / self.factor - 1.0, close }
        }
    }
}

impl Verdict {
    /// The verdict in words, for the table.
    pub fn words(&self) -> String {
        let closeness = |close: bool| if close { ", ranges overlap" } else { "" };
        match self {
            Verdict::NotMeasured => "not measured".into(),
            Verdict::Failed(_) => "**missed**: starved".into(),
            Verdict::Met { close, .. } => format!("met{}", closeness(*close)),
            Verdict::Missed { over, close, .. } => format!("**missed** by {:.0}%{}", over * 100.0, closeness(*close)),
        }
    }
}

/// The targets, in the page's order.
pub fn targets(results: &Results) -> Vec<Target> {
    let target =
        |what: String, ours: String, peer: String, factor: f64| Target { what, ours, peer, factor, failed_if: None };
    let sleepers = grouped(results.sleepers().unwrap_or(100_000) as f64);
    let gets = results.sizes().last().copied().unwrap_or(10_000);
    let gets_said = grouped(gets as f64);
    let cpu = |who: &str| format!("{gets} GETs / {who} / CPU time");
    let lateness = |who: &str, measure: &str| format!("{} / {who} / {measure}", name::LATENESS);
    let starved = |who: &str| Some(lateness(who, name::STARVED));
    vec![
        target(
            format!("task-to-task ping-pong: ch05 ≤ {TOKIO}"),
            format!("{} / {CH05}", name::PING_PONG),
            format!("{} / {TOKIO}", name::PING_PONG),
            1.0,
        ),
        target(format!("{gets_said} GETs' CPU time: ch05, own reactor ≤ {TOKIO}"), cpu(CH05_OWN), cpu(TOKIO), 1.0),
        target(
            format!("{gets_said} GETs' CPU time: ch05, reactor thread ≤ 1.05 × {TOKIO}"),
            cpu(CH05),
            cpu(TOKIO),
            1.05,
        ),
        target(
            format!("{gets_said} GETs' CPU time: {CH05_MULTI} ≤ {TOKIO_MULTI}"),
            cpu(CH05_MULTI),
            cpu(TOKIO_MULTI),
            1.0,
        ),
        target(
            format!(
                "{gets_said} GETs' CPU time, the cost of the abstraction: ch05, own reactor ≤ 1.10 × ch03's epoll loop"
            ),
            cpu(CH05_OWN),
            cpu(crate::requests::EPOLL),
            1.10,
        ),
        Target {
            failed_if: starved(CH05),
            ..target(
                format!("timer lateness beside a yielding task, median: ch05 ≤ {TOKIO}"),
                lateness(CH05, name::BESIDE_MEDIAN),
                lateness(TOKIO, name::BESIDE_MEDIAN),
                1.0,
            )
        },
        Target {
            failed_if: starved(CH05),
            ..target(
                format!("timer lateness beside a yielding task, the latest sleep of a run: ch05 ≤ {TOKIO}"),
                lateness(CH05, name::BESIDE_MAX),
                lateness(TOKIO, name::BESIDE_MAX),
                1.0,
            )
        },
        target(
            format!("spawn + complete per task: ch05 ≤ {LOCAL_POOL}"),
            format!("{} / {CH05}", name::SPAWN),
            format!("{} / {LOCAL_POOL}", name::SPAWN),
            1.0,
        ),
        target(
            format!("yield (one wake + poll): ch05 ≤ {LOCAL_POOL}"),
            format!("{} / {CH05}", name::ROUND_TRIP),
            format!("{} / {LOCAL_POOL}", name::ROUND_TRIP),
            1.0,
        ),
        target(
            format!("{sleepers} sleeping tasks, bytes per task: ch05 ≤ {SMOL_LOCAL} (async-executor)"),
            format!("{} / {CH05}", name::IDLE_MEMORY),
            format!("{} / {SMOL_LOCAL}", name::IDLE_MEMORY),
            1.0,
        ),
        target(
            format!("{sleepers} sleeping tasks, bytes per task: ch05, own reactor ≤ {SMOL_LOCAL} (async-executor)"),
            format!("{} / {CH05_OWN}", name::IDLE_MEMORY),
            format!("{} / {SMOL_LOCAL}", name::IDLE_MEMORY),
            1.0,
        ),
        target(
            "ch02 inline switch round trip ≤ 1.5 × corosensei".into(),
            format!("{} / ch02 fibers, inline switch", name::ROUND_TRIP),
            format!("{} / corosensei", name::ROUND_TRIP),
            1.5,
        ),
    ]
}

/// The targets with the figures and a verdict each.
pub fn targets_table(results: &Results) -> String {
    let header = ["target", "ours", "peer", "ours / peer", "verdict"].map(String::from);
    let mut lines: Vec<Vec<String>> = Vec::new();
    for target in targets(results) {
        let verdict = target.verdict(results);
        let ratio = match verdict {
            Verdict::Met { ratio, .. } | Verdict::Missed { ratio, .. } => format!("{ratio:.2}"),
            _ => "—".into(),
        };
        let (ours, peer) = (results.get(&target.ours), results.get(&target.peer));
        lines.push(vec![target.what.clone(), median_cell(ours), median_cell(peer), ratio, verdict.words()]);
    }
    let teaching = results.value(&format!("{} / {CH02}", name::ROUND_TRIP));
    let corosensei = results.value(&format!("{} / corosensei", name::ROUND_TRIP));
    if let Some((teaching, corosensei)) = teaching.zip(corosensei) {
        lines.push(vec![
            "(for reference) ch02 teaching switch round trip vs corosensei".into(),
            amount(teaching, "ns"),
            amount(corosensei, "ns"),
            format!("{:.2}", teaching / corosensei),
            "not a target".into(),
        ]);
    }
    let mut out = table(&header, &lines);
    out.push_str(
        "\n*\"Ranges overlap\": the smallest–largest ranges of the two figures overlap (the peer's scaled by the \
         target's factor), so another run may well give the other verdict.*\n",
    );
    out
}

/// The closing note's figures in a few lines: for each measure, every
/// contender's median, then the targets met and missed.
pub fn summary_table(results: &Results) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut line = |what: String, workload: &str, measure: Option<&str>| {
        let figures: Vec<String> = results
            .contenders(workload)
            .into_iter()
            .filter_map(|who| {
                let metric = measure.map_or(format!("{workload} / {who}"), |m| format!("{workload} / {who} / {m}"));
                let row = results.get(&metric)?;
                Some(format!("{who} {}", amount(row.value?, &row.unit)))
            })
            .collect();
        if !figures.is_empty() {
            lines.push(vec![what, figures.join("; ")]);
        }
    };
    if let Some(n) = results.sizes().last() {
        let workload = format!("{n} GETs");
        let n = grouped(*n as f64);
        line(format!("{n} concurrent GETs, CPU time"), &workload, Some("CPU time"));
        line(format!("{n} concurrent GETs, memory per request"), &workload, Some("memory per request"));
    }
    line("switch / yield round trip".into(), name::ROUND_TRIP, None);
    line("ping-pong between two tasks".into(), name::PING_PONG, None);
    line("spawn + complete, per task".into(), name::SPAWN, None);
    line("memory per idle task".into(), name::IDLE_MEMORY, None);
    line("timer lateness beside a yielding task, median".into(), name::LATENESS, Some(name::BESIDE_MEDIAN));
    line("flooding clients: the other client answered after".into(), name::FLOODING, Some(name::ANSWER_TIME));
    let (mut met, mut missed) = (Vec::new(), Vec::new());
    for target in targets(results) {
        let verdict = target.verdict(results);
        let figures = match (results.get(&target.ours), results.get(&target.peer)) {
            (Some(ours), Some(peer)) => format!(": {} vs {}", median_cell(Some(ours)), median_cell(Some(peer))),
            _ => String::new(),
        };
        let text = format!("{}{figures} ({})", target.what.trim(), verdict.words().replace("**", ""));
        match verdict {
            Verdict::Met { .. } => met.push(text),
            Verdict::Missed { .. } | Verdict::Failed(_) => missed.push(text),
            Verdict::NotMeasured => {}
        }
    }
    let list = |items: Vec<String>| if items.is_empty() { "none".to_string() } else { items.join("; ") };
    lines.push(vec!["targets met".into(), list(met)]);
    lines.push(vec!["targets missed".into(), list(missed)]);
    table(&["".into(), "figures (medians)".into()], &lines)
}

/// Everything, for the terminal: the caption, then every table.
pub fn text(results: &Results) -> String {
    let mut out = format!("{}\n\n", caption(results));
    if !results.sizes().is_empty() {
        out.push_str(&gets_table(results));
    }
    if results.get(&format!("{} / corosensei", name::ROUND_TRIP)).is_some() {
        out.push_str(&micro_table(results));
        out.push('\n');
    }
    if !results.contenders(name::LATENESS).is_empty() {
        out.push_str(&fairness_table(results));
        out.push('\n');
    }
    out.push_str(&syscalls_table(results));
    out.push('\n');
    out.push_str(&targets_table(results));
    out
}

/// Writes the page's generated files into `dir`: the tables (`gets.md`,
/// `micro.md`, `fairness.md`, `syscalls.md`, `targets.md`, `summary.md`,
/// each opening with the caption), the sentences of the page that quote
/// figures (`says-*.md`, see [`prose`]), the chart (`chart.svg`) and, when
/// given, `results.jsonl`. Every file is written whatever was measured, so
/// the page's includes always resolve; a part that did not run says so.
pub fn write(results: &Results, dir: &Path, jsonl: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let generated = "<!-- generated by `cargo run --release --manifest-path bench/Cargo.toml`: do not edit -->";
    let not_run = |part: &str| format!("{generated}\n\n*This run did not measure {part}.*\n");
    let mut files = vec![("chart.svg".to_string(), chart::svg(results))];
    let mut table_file = |file: &str, present: bool, part: &str, table: &dyn Fn(&Results) -> String| {
        // The counts come from one run each, not from medians.
        let caption = match file {
            "syscalls.md" => format!("Counted on {}, one untimed run per contender.", results.machine()),
            _ => caption(results),
        };
        let text = if present { format!("{generated}\n\n*{caption}*\n\n{}", table(results)) } else { not_run(part) };
        files.push((file.to_string(), text));
    };
    let micro = results.get(&format!("{} / corosensei", name::ROUND_TRIP)).is_some();
    table_file("gets.md", !results.sizes().is_empty(), "the concurrent GETs", &gets_table);
    table_file("micro.md", micro, "the microbenchmarks", &micro_table);
    table_file("fairness.md", !results.contenders(name::LATENESS).is_empty(), "fairness", &fairness_table);
    table_file("syscalls.md", true, "system calls", &syscalls_table);
    table_file("targets.md", true, "the targets", &targets_table);
    table_file("summary.md", true, "the closing note", &summary_table);
    // No newline at the end: a sentence is often included in the middle of
    // a line of the page, and mdBook includes a file's bytes as they are.
    files.extend(prose::all(results));
    if let Some(jsonl) = jsonl {
        files.push(("results.jsonl".into(), jsonl.to_string()));
    }
    for (name, text) in files {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A table with its no-break spaces made plain, to compare with text.
    fn plain(table: String) -> String {
        table.replace('\u{a0}', " ")
    }

    /// A few figures as a run writes them.
    pub(crate) const SAMPLE: &str = r#"{"chapter":"showdown","metric":"machine","value":2,"unit":"CPUs","note":"machine: Test CPU, 2 CPUs, Linux 6.1 (release build); 2026-01-02"}
{"chapter":"showdown","metric":"GETs / all / runs","value":5,"unit":"count"}
{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / wall","value":1002000000,"unit":"ns","min":1001000000,"max":1010000000}
{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / CPU time","value":10000000,"unit":"ns","min":9000000,"max":11000000}
{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / answered","value":100,"unit":"count"}
{"chapter":"showdown","metric":"100 GETs / ch05 runtime, 1 thread, own reactor / wall","value":1002000000,"unit":"ns","min":1001000000,"max":1010000000}
{"chapter":"showdown","metric":"100 GETs / ch05 runtime, 1 thread, own reactor / CPU time","value":12000000,"unit":"ns","min":10500000,"max":13000000}
{"chapter":"showdown","metric":"100 GETs / ch05 runtime, 1 thread, own reactor / answered","value":99,"unit":"count","note":"first failure: refused"}
{"chapter":"showdown","metric":"100 GETs / ch01 thread per request / wall","value":null,"unit":"ns","note":"does not fit: too many"}
{"chapter":"showdown","metric":"round trip / corosensei","value":4.0,"unit":"ns","min":3.9,"max":4.4}
{"chapter":"showdown","metric":"round trip / ch02 fibers, inline switch","value":5.0,"unit":"ns","min":4.8,"max":5.1}
{"chapter":"showdown","metric":"round trip / ch05 runtime, 1 thread","value":60,"unit":"ns","min":58,"max":70}
{"chapter":"showdown","metric":"round trip / futures LocalPool","value":50,"unit":"ns","min":49,"max":51}
{"chapter":"showdown","metric":"allocations per spawn / futures LocalPool","value":2.0001,"unit":"count"}
{"chapter":"showdown","metric":"timer lateness / all / timer","value":1000000,"unit":"ns"}
{"chapter":"showdown","metric":"timer lateness / ch05 runtime, 1 thread / beside a yielding task, median","value":990000000,"unit":"ns","min":980000000,"max":1000000000}
{"chapter":"showdown","metric":"timer lateness / ch05 runtime, 1 thread / starved runs","value":5,"unit":"count","note":"in 5 of 5 runs the yielding task reached its 1.00 s limit before the sleeps were done"}
{"chapter":"showdown","metric":"timer lateness / tokio current_thread / beside a yielding task, median","value":500000,"unit":"ns","min":400000,"max":600000}
{"chapter":"showdown","metric":"timer lateness / tokio current_thread / starved runs","value":0,"unit":"count"}
{"chapter":"showdown","metric":"flooding / all / limit","value":3000000000,"unit":"ns"}
{"chapter":"showdown","metric":"flooding / ch01 delay server, thread per connection / answer time","value":400000,"unit":"ns","min":300000,"max":900000}
{"chapter":"showdown","metric":"flooding / ch01 delay server, thread per connection / unanswered runs","value":0,"unit":"count"}
{"chapter":"showdown","metric":"flooding / ch05 async delay server, 1 thread / answer time","value":null,"unit":"ns","min":870000000,"max":870000000,"note":"no answer within 3.00 s in 4 of 5 runs"}
{"chapter":"showdown","metric":"flooding / ch05 async delay server, 1 thread / unanswered runs","value":4,"unit":"count"}
{"chapter":"showdown","metric":"system calls at 100 GETs / ch03 one epoll loop / epoll waits","value":12,"unit":"count"}
{"chapter":"showdown","metric":"system calls at 100 GETs / ch03 one epoll loop / writes","value":100,"unit":"count"}
{"chapter":"showdown","metric":"system calls per ping-pong round trip / tokio current_thread / epoll waits, block_on","value":1.0,"unit":"count"}
{"chapter":"showdown","metric":"system calls per ping-pong round trip / tokio current_thread / epoll waits, tasks","value":0.02,"unit":"count"}
"#;

    #[test]
    fn tables_show_medians_with_the_ranges_folded_under_them() -> anyhow::Result<()> {
        let results = Results::parse(SAMPLE)?;
        assert_eq!(results.sizes(), [100]);
        assert!(caption(&results).contains("Test CPU, 2 CPUs, Linux 6.1") && caption(&results).contains("5 runs"));
        let gets = plain(gets_table(&results));
        assert!(gets.contains("| ch03 one epoll loop | 1.00 s | 10.0 ms | — | — |"), "{gets}");
        assert!(gets.contains("| ch03 one epoll loop | 1.00–1.01 s | 9.00–11.0 ms | — | — |"), "{gets}");
        assert!(gets.contains("<details><summary>Smallest–largest of the 5 runs</summary>"), "{gets}");
        assert!(gets.contains("| ch01 thread per request | — | — |"), "{gets}");
        assert!(gets.contains("*ch01 thread per request: does not fit: too many*"), "{gets}");
        assert!(gets.contains("Fewer answers than requests (worst run): ch05 runtime, 1 thread, own reactor 99/100."));
        let micro = plain(micro_table(&results));
        assert!(micro.contains("| corosensei | 4.0 ns | — |"), "{micro}");
        assert!(micro.contains("| corosensei | 3.9–4.4 ns | — |"), "{micro}");
        assert!(micro.contains("| futures LocalPool | 50.0 ns | — | — | — |"), "{micro}");
        assert!(
            micro.contains("**Memory and allocations**:") && micro.contains("| futures LocalPool | 2.00 | — | — |"),
            "{micro}"
        );
        Ok(())
    }

    #[test]
    fn a_range_cell_names_the_unit_once_when_both_ends_share_it() {
        let row = |min: f64, max: f64, unit: &str| Row {
            metric: "x".into(),
            value: Some(min),
            unit: unit.into(),
            min: Some(min),
            max: Some(max),
            note: None,
        };
        assert_eq!(range_cell(Some(&row(50.8, 53.6, "ns"))), "50.8–53.6\u{a0}ns");
        assert_eq!(range_cell(Some(&row(900_000.0, 1_200_000.0, "ns"))), "900\u{a0}µs–1.20\u{a0}ms");
        assert_eq!(range_cell(Some(&row(236.0, 236.0, "B"))), "236\u{a0}B");
        assert_eq!(range_cell(None), "—");
    }

    #[test]
    fn fairness_tables_say_starved_and_unanswered() -> anyhow::Result<()> {
        let fairness = plain(fairness_table(&Results::parse(SAMPLE)?));
        assert!(fairness.contains("how late a 1.00 ms sleep ends"), "{fairness}");
        assert!(fairness.contains("| ch05 runtime, 1 thread | — | — | 990 ms | — |"), "{fairness}");
        assert!(fairness.contains("*ch05 runtime, 1 thread: starved: in 5 of 5 runs"), "{fairness}");
        assert!(
            fairness.contains(
                "| ch05 async delay server, 1 thread | no answer within 3.00 s | 870 ms–no answer | 4 of 5 |"
            ),
            "{fairness}"
        );
        assert!(
            fairness.contains("| ch01 delay server, thread per connection | 400 µs | 300–900 µs | 0 of 5 |"),
            "{fairness}"
        );
        Ok(())
    }

    #[test]
    fn syscall_tables_come_from_the_counts_or_say_why_not() -> anyhow::Result<()> {
        let results = Results::parse(SAMPLE)?;
        let calls = plain(syscalls_table(&results));
        assert!(calls.contains("| ch03 one epoll loop | 12 | 100 | — | — |"), "{calls}");
        assert!(calls.contains("| tokio current_thread | 0.02 | — | 1.00 | — |"), "{calls}");
        let refused = format!(
            "{SAMPLE}{}\n",
            r#"{"chapter":"showdown","metric":"system calls / all / perf","value":null,"unit":"count","note":"perf is not available (No such file)"}"#
        );
        let calls = syscalls_table(&Results::parse(&refused)?);
        assert!(calls.contains("Not counted on this machine: perf is not available"), "{calls}");
        Ok(())
    }

    #[test]
    fn targets_get_a_verdict_from_the_ratio_and_the_ranges() -> anyhow::Result<()> {
        let results = Results::parse(SAMPLE)?;
        let targets = plain(targets_table(&results));
        // 5.0 / 4.0 = 1.25, within 1.5 times; 4.8–5.1 against 5.85–6.6: apart.
        assert!(
            targets.contains("| ch02 inline switch round trip ≤ 1.5 × corosensei | 5.0 ns | 4.0 ns | 1.25 | met |"),
            "{targets}"
        );
        // 60 / 50 = 1.2: 20% over, 58–70 against 49–51: apart.
        assert!(targets.contains("| 60.0 ns | 50.0 ns | 1.20 | **missed** by 20% |"), "{targets}");
        // 12 ms against 10 ms × 1.10 = 11 ms: 9% over, 10.5–13 against 9.9–12.1: overlapping.
        assert!(targets.contains("| 1.20 | **missed** by 9%, ranges overlap |"), "{targets}");
        assert!(targets.contains("| timer lateness beside a yielding task, median: ch05 ≤ tokio current_thread | 990 ms | 500 µs | — | **missed**: starved |"), "{targets}");
        assert!(targets.contains("| not measured |"), "{targets}");
        let summary = plain(summary_table(&results));
        assert!(
            summary.contains("| switch / yield round trip | corosensei 4.0 ns; ch02 fibers, inline switch 5.0 ns;"),
            "{summary}"
        );
        assert!(
            summary.contains("yield (one wake + poll): ch05 ≤ futures LocalPool: 60.0 ns vs 50.0 ns (missed by 20%)"),
            "{summary}"
        );
        Ok(())
    }

    #[test]
    fn numbers_and_names_read_as_the_book_writes_them() {
        assert_eq!(grouped(65_530.0), "65 530");
        assert_eq!(grouped(1_000.0), "1 000");
        assert_eq!(grouped(10_000.0), "10 000");
        assert_eq!(grouped(1_234_567.0), "1 234 567");
        assert_eq!(grouped(950.0), "950");
        assert_eq!(names(&["a, 1"]), "*a, 1*");
        assert_eq!(names(&["a, 1", "b"]), "*a, 1* and *b*");
        assert_eq!(names(&["a", "b", "c"]), "*a*, *b* and *c*");
    }

    #[test]
    fn a_line_that_is_not_a_figure_is_an_error_with_its_number() {
        let error = Results::parse("{\"metric\":\"x\",\"value\":1,\"unit\":\"ns\"}\nnot json\n").unwrap_err();
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
    }

    #[test]
    fn every_file_the_page_includes_is_written_even_for_a_partial_run() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("showdown-render-test-{}", std::process::id()));
        let partial = "{\"chapter\":\"showdown\",\"metric\":\"machine\",\"value\":2,\"unit\":\"CPUs\"}\n";
        write(&Results::parse(partial)?, &dir, None)?;
        let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/src/showdown.md"))?;
        let included: Vec<&str> =
            page.split("{{#include showdown/").skip(1).filter_map(|rest| rest.split("}}").next()).collect();
        assert!(included.len() >= 5, "{included:?}");
        for file in included {
            let text = std::fs::read_to_string(dir.join(file)).with_context(|| file.to_string())?;
            assert!(!text.trim().is_empty(), "{file} is empty");
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
