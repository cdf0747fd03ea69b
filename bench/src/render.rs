//! From `results.jsonl` to the tables of the Showdown page: the showdown per
//! N, the microbenchmarks, and the targets with their verdicts. Nothing here
//! measures; everything comes from the figures, so `showdown render FILE`
//! gives the same page as the run that wrote FILE.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ch01_os_threads::report;
use serde::Deserialize;

use crate::chart;

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

    /// The machine line and the date, as the run printed them.
    pub fn machine(&self) -> String {
        self.get("machine").and_then(|row| row.note.clone()).unwrap_or_else(|| "machine: unknown".into())
    }

    /// The contenders of `workload`, in the order they were measured.
    pub fn contenders(&self, workload: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for row in &self.rows {
            let mut parts = row.metric.split(" / ");
            if parts.next() == Some(workload)
                && let Some(who) = parts.next()
                && who != "all"
                && !found.iter().any(|f| f == who)
            {
                found.push(who.to_string());
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

    /// A figure in `unit`-aware words: `5.3 ns`, `1.52 s`, `4.3 KiB`.
    fn value(&self, metric: &str) -> Option<f64> {
        self.get(metric)?.value
    }

    /// The runs per cell, from the run's own figure.
    fn runs(&self) -> usize {
        self.value("GETs / all / runs").map_or(5, |runs| runs as usize)
    }
}

/// A value in its unit, with tenths of a nanosecond where that is the scale.
pub fn amount(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value < 100.0 => format!("{value:.1} ns"),
        "ns" => report::duration(Duration::from_nanos(value.round() as u64)),
        "B" => report::bytes(value.round() as u64),
        _ => format!("{value:.0}"),
    }
}

/// A table cell: the median, and the range in brackets when runs were repeated.
fn cell(row: Option<&Row>) -> String {
    let Some(row) = row else { return "—".into() };
    match (row.value, row.min, row.max) {
        (None, ..) => row.note.clone().unwrap_or_else(|| "—".into()),
        (Some(value), Some(min), Some(max)) if amount(min, &row.unit) != amount(max, &row.unit) => {
            format!("{} ({}–{})", amount(value, &row.unit), amount(min, &row.unit), amount(max, &row.unit))
        }
        (Some(value), ..) => amount(value, &row.unit),
    }
}

/// The caption line every table and the chart carry.
pub fn caption(results: &Results) -> String {
    format!("Measured on {}. Medians of {} runs, smallest–largest in brackets.", results.machine(), results.runs())
}

/// The showdown tables, one per N.
pub fn gets_table(results: &Results) -> String {
    let mut out = String::new();
    let delay = results.value("GETs / all / delay").map_or(String::new(), |ns| amount(ns, "ns"));
    for n in results.sizes() {
        let workload = format!("{n} GETs");
        let _ = writeln!(out, "**N = {n} concurrent GETs**, each answered after {delay}:\n");
        out.push_str("| approach | wall | CPU time | peak RSS | memory per request | answered |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        let mut notes = Vec::new();
        for who in results.contenders(&workload) {
            let get = |measure: &str| results.get(&format!("{workload} / {who} / {measure}"));
            let answered = get("answered").and_then(|row| row.value).map_or("—".into(), |a| format!("{a:.0}/{n}"));
            if let Some(note) = get("answered").and_then(|row| row.note.clone()) {
                notes.push(format!("{who}: {note}"));
            }
            if get("wall").is_some_and(|row| row.value.is_none()) {
                let _ = writeln!(out, "| {who} | {} | — | — | — | — |", cell(get("wall")));
                continue;
            }
            let cells = ["wall", "CPU time", "peak RSS", "memory per request"].map(|m| cell(get(m)));
            let _ = writeln!(out, "| {who} | {} | {answered} |", cells.join(" | "));
        }
        for note in notes {
            let _ = writeln!(out, "\n*{}*", note.replace('*', "\\*"));
        }
        out.push('\n');
    }
    out
}

/// The microbenchmark table: one row per contender.
pub fn micro_table(results: &Results) -> String {
    let sleepers = results.sleepers().unwrap_or(0);
    let sleeps = format!("{sleepers} sleeps wall");
    let columns = ["round trip", "ping-pong", "spawn + complete", "idle task memory", sleeps.as_str()];
    let mut contenders: Vec<String> = Vec::new();
    for workload in columns {
        for who in results.contenders(workload) {
            if !contenders.contains(&who) {
                contenders.push(who);
            }
        }
    }
    let mut out = String::new();
    let titles = [
        "switch / yield round trip",
        "ping-pong round trip",
        "spawn + complete, per task",
        "memory per idle task",
        &format!("{sleepers} sleeps at once, wall"),
    ];
    let _ = writeln!(out, "| contender | {} |", titles.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(titles.len()));
    for who in contenders {
        let cells = columns.map(|workload| cell(results.get(&format!("{workload} / {who}"))));
        let _ = writeln!(out, "| {who} | {} |", cells.join(" | "));
    }
    out
}

/// One target of the issue: `ours` must be at most `factor` times `peer`.
struct Target {
    /// What it says, in words.
    what: String,
    /// Our figure.
    ours: String,
    /// The peer's figure.
    peer: String,
    /// How much above the peer still meets it.
    factor: f64,
}

fn targets(results: &Results) -> Vec<Target> {
    let target = |what: &str, ours: String, peer: String, factor: f64| Target { what: what.into(), ours, peer, factor };
    let sleepers = results.sleepers().unwrap_or(100_000);
    let gets = results.sizes().last().copied().unwrap_or(10_000);
    let ch05 = "ch05 runtime, 1 thread";
    vec![
        target(
            "spawn + complete per task: ch05 ≤ futures LocalPool",
            format!("spawn + complete / {ch05}"),
            "spawn + complete / futures LocalPool".into(),
            1.0,
        ),
        target(
            "wake + poll ping-pong: ch05 ≤ tokio current_thread",
            format!("ping-pong / {ch05}"),
            "ping-pong / tokio current_thread".into(),
            1.0,
        ),
        target(
            &format!("{sleepers} concurrent sleeps, wall: ch05 ≤ tokio current_thread"),
            format!("{sleepers} sleeps wall / {ch05}"),
            format!("{sleepers} sleeps wall / tokio current_thread"),
            1.0,
        ),
        target(
            "  the same, ch05 with its own reactor ≤ tokio current_thread",
            format!("{sleepers} sleeps wall / {ch05}, own reactor"),
            format!("{sleepers} sleeps wall / tokio current_thread"),
            1.0,
        ),
        target(
            &format!("{sleepers} concurrent sleeps, bytes per task: ch05 ≤ async-executor"),
            format!("idle task memory / {ch05}"),
            "idle task memory / smol async-executor".into(),
            1.0,
        ),
        target(
            "  the same, ch05 with its own reactor ≤ async-executor",
            format!("idle task memory / {ch05}, own reactor"),
            "idle task memory / smol async-executor".into(),
            1.0,
        ),
        target(
            &format!("{gets} concurrent GETs, CPU time: ch05 ≤ tokio current_thread"),
            format!("{gets} GETs / {ch05} / CPU time"),
            format!("{gets} GETs / tokio current_thread / CPU time"),
            1.0,
        ),
        target(
            "  the same, ch05 with its own reactor (tokio's design) ≤ tokio current_thread",
            format!("{gets} GETs / {ch05}, own reactor / CPU time"),
            format!("{gets} GETs / tokio current_thread / CPU time"),
            1.0,
        ),
        target(
            "ch02 inline switch round trip ≤ 1.5 × corosensei",
            "round trip / ch02 fibers, inline switch".into(),
            "round trip / corosensei".into(),
            1.5,
        ),
        target(
            "yield (one wake + poll): ch05 ≤ futures LocalPool",
            format!("round trip / {ch05}"),
            "round trip / futures LocalPool".into(),
            1.0,
        ),
    ]
}

/// The targets with the figures and a verdict each.
pub fn targets_table(results: &Results) -> String {
    let mut out = String::from("| target | ours | peer | ours / peer | verdict |\n|---|---|---|---|---|\n");
    for target in targets(results) {
        let (ours, peer) = (results.get(&target.ours), results.get(&target.peer));
        let ratio = ours.and_then(|o| o.value).zip(peer.and_then(|p| p.value)).map(|(o, p)| o / p);
        let verdict = match ratio {
            None => "not measured".to_string(),
            Some(r) if r <= target.factor => "met".to_string(),
            Some(r) => format!("**missed** by {:.0}%", (r / target.factor - 1.0) * 100.0),
        };
        let ratio = ratio.map_or("—".into(), |r| format!("{r:.2}"));
        let _ = writeln!(out, "| {} | {} | {} | {ratio} | {verdict} |", target.what, cell(ours), cell(peer));
    }
    let teaching = results.value("round trip / ch02 fibers, teaching switch");
    let corosensei = results.value("round trip / corosensei");
    if let Some((teaching, corosensei)) = teaching.zip(corosensei) {
        let _ = writeln!(
            out,
            "| (for reference) ch02 teaching switch round trip vs corosensei | {} | {} | {:.2} | not a target |",
            amount(teaching, "ns"),
            amount(corosensei, "ns"),
            teaching / corosensei
        );
    }
    out
}

/// The closing note's figures in a few lines: for each measure, every
/// contender's median, then the targets met and missed.
pub fn summary_table(results: &Results) -> String {
    let mut out = String::from("| | figures (medians) |\n|---|---|\n");
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
            let _ = writeln!(out, "| {what} | {} |", figures.join("; "));
        }
    };
    if let Some(n) = results.sizes().last() {
        let workload = format!("{n} GETs");
        line(format!("{n} concurrent GETs, CPU time"), &workload, Some("CPU time"));
        line(format!("{n} concurrent GETs, memory per request"), &workload, Some("memory per request"));
    }
    line("switch / yield round trip".into(), "round trip", None);
    line("spawn + complete, per task".into(), "spawn + complete", None);
    line("memory per idle task".into(), "idle task memory", None);
    let (mut met, mut missed) = (Vec::new(), Vec::new());
    for target in targets(results) {
        let (Some(ours), Some(peer)) = (results.get(&target.ours), results.get(&target.peer)) else { continue };
        let (Some(o), Some(p)) = (ours.value, peer.value) else { continue };
        let text = format!("{}: {} vs {}", target.what, amount(o, &ours.unit), amount(p, &peer.unit));
        if o / p <= target.factor {
            met.push(text);
        } else {
            missed.push(format!("{text}, {:.0}% over", (o / p / target.factor - 1.0) * 100.0));
        }
    }
    let _ = writeln!(out, "| targets met | {} |", if met.is_empty() { "none".into() } else { met.join("; ") });
    let _ = writeln!(out, "| targets missed | {} |", if missed.is_empty() { "none".into() } else { missed.join("; ") });
    out
}

/// Everything, for the terminal: the caption, then every table.
pub fn text(results: &Results) -> String {
    let mut out = format!("{}\n\n", caption(results));
    if !results.sizes().is_empty() {
        out.push_str(&gets_table(results));
    }
    if results.get("round trip / corosensei").is_some() {
        out.push_str(&micro_table(results));
        out.push('\n');
        out.push_str(&targets_table(results));
    }
    out
}

/// Writes the page's generated files into `dir`: the tables (`gets.md`,
/// `micro.md`, `targets.md`, each opening with the caption), the chart
/// (`chart.svg`) and, when given, `results.jsonl`.
pub fn write(results: &Results, dir: &Path, jsonl: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let generated = "<!-- generated by `cargo run --release --manifest-path bench/Cargo.toml`: do not edit -->";
    let with_caption = |table: String| format!("{generated}\n\n*{}*\n\n{table}", caption(results));
    let mut files = vec![("chart.svg", chart::svg(results))];
    if !results.sizes().is_empty() {
        files.push(("gets.md", with_caption(gets_table(results))));
    }
    if results.get("round trip / corosensei").is_some() {
        files.push(("micro.md", with_caption(micro_table(results))));
        files.push(("targets.md", with_caption(targets_table(results))));
        files.push(("summary.md", with_caption(summary_table(results))));
    }
    if let Some(jsonl) = jsonl {
        files.push(("results.jsonl", jsonl.to_string()));
    }
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few figures as a run writes them.
    const SAMPLE: &str = r#"{"chapter":"showdown","metric":"machine","value":2,"unit":"CPUs","note":"machine: Test CPU, 2 CPUs, Linux 6.1 (release build); 2026-01-02"}
{"chapter":"showdown","metric":"GETs / all / runs","value":5,"unit":"count"}
{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / wall","value":1002000000,"unit":"ns","min":1001000000,"max":1010000000}
{"chapter":"showdown","metric":"100 GETs / ch03 one epoll loop / answered","value":100,"unit":"count"}
{"chapter":"showdown","metric":"100 GETs / ch01 thread per request / wall","value":null,"unit":"ns","note":"does not fit: too many"}
{"chapter":"showdown","metric":"round trip / corosensei","value":4.0,"unit":"ns","min":3.9,"max":4.4}
{"chapter":"showdown","metric":"round trip / ch02 fibers, inline switch","value":5.0,"unit":"ns","min":4.8,"max":5.1}
{"chapter":"showdown","metric":"round trip / ch05 runtime, 1 thread","value":60,"unit":"ns"}
{"chapter":"showdown","metric":"round trip / futures LocalPool","value":50,"unit":"ns"}
"#;

    #[test]
    fn tables_come_from_the_figures() -> anyhow::Result<()> {
        let results = Results::parse(SAMPLE)?;
        assert_eq!(results.sizes(), [100]);
        assert!(caption(&results).contains("Test CPU, 2 CPUs, Linux 6.1") && caption(&results).contains("5 runs"));
        let gets = gets_table(&results);
        assert!(gets.contains("| ch03 one epoll loop | 1.00 s (1.00 s–1.01 s) | — | — | — | 100/100 |"), "{gets}");
        assert!(gets.contains("| ch01 thread per request | does not fit: too many | — |"), "{gets}");
        let micro = micro_table(&results);
        assert!(micro.contains("| corosensei | 4.0 ns (3.9 ns–4.4 ns) | — |"), "{micro}");
        Ok(())
    }

    #[test]
    fn targets_get_a_verdict_from_the_ratio() -> anyhow::Result<()> {
        let targets = targets_table(&Results::parse(SAMPLE)?);
        // 5.0 / 4.0 = 1.25, within 1.5 times.
        assert!(targets.contains("| ch02 inline switch round trip ≤ 1.5 × corosensei | 5.0 ns (4.8 ns–5.1 ns) | 4.0 ns (3.9 ns–4.4 ns) | 1.25 | met |"), "{targets}");
        // 60 / 50 = 1.2: 20% over.
        assert!(targets.contains("| 1.20 | **missed** by 20% |"), "{targets}");
        assert!(targets.contains("| not measured |"), "{targets}");
        let summary = summary_table(&Results::parse(SAMPLE)?);
        assert!(
            summary.contains("| switch / yield round trip | corosensei 4.0 ns; ch02 fibers, inline switch 5.0 ns;"),
            "{summary}"
        );
        assert!(summary.contains("futures LocalPool: 60.0 ns vs 50.0 ns, 20% over |"), "{summary}");
        Ok(())
    }

    #[test]
    fn a_line_that_is_not_a_figure_is_an_error_with_its_number() {
        let error = Results::parse("{\"metric\":\"x\",\"value\":1,\"unit\":\"ns\"}\nnot json\n").unwrap_err();
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
    }

    #[test]
    fn the_chart_is_an_svg_with_a_bar_per_figure_and_the_machine() -> anyhow::Result<()> {
        let svg = crate::chart::svg(&Results::parse(SAMPLE)?);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 5, "four round trips, one wall time: {svg}");
        assert!(svg.contains("Test CPU"), "{svg}");
        // Grid lines at round numbers: 1 ns, 10 ns, 100 ns (the bars span 4 to 60 ns).
        for label in [">1 ns<", ">10 ns<", ">100 ns<"] {
            assert!(svg.contains(label), "{label}: {svg}");
        }
        Ok(())
    }
}
