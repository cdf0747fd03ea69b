//! The Showdown page's chart: horizontal bars on a logarithmic axis (the
//! values span five orders of magnitude, from a few nanoseconds for a fiber
//! switch to microseconds for a thread hand-over), one panel per measure,
//! each bar with its value and a whisker from the smallest to the largest
//! run. Plain SVG, written by hand: no dependency, and readable as text.

use std::fmt::Write as _;

use crate::render::{Results, Row, amount, caption};

/// Overall width, and where the bars start and end.
const WIDTH: f64 = 980.0;
const BARS_FROM: f64 = 330.0;
const BARS_TO: f64 = 850.0;
/// Height of one bar's row, and of a panel's title.
const ROW: f64 = 22.0;
const TITLE: f64 = 44.0;

/// One panel: a title and `(label, figure)` bars.
struct Panel<'a> {
    title: String,
    bars: Vec<(String, &'a Row)>,
}

/// The chart of `results` as an SVG document.
pub fn svg(results: &Results) -> String {
    let mut panels = Vec::new();
    let mut panel = |title: String, workload: &str, measure: Option<&str>| {
        let bars: Vec<(String, &Row)> = results
            .contenders(workload)
            .into_iter()
            .filter_map(|who| {
                let metric = match measure {
                    Some(measure) => format!("{workload} / {who} / {measure}"),
                    None => format!("{workload} / {who}"),
                };
                let row = results.get(&metric)?;
                row.value.filter(|v| *v > 0.0).map(|_| (who, row))
            })
            .collect();
        if !bars.is_empty() {
            panels.push(Panel { title, bars });
        }
    };
    panel("Switch or yield round trip (lower is better)".into(), "round trip", None);
    panel("Spawn + complete, per task".into(), "spawn + complete", None);
    panel("Memory per idle task (resident)".into(), "idle task memory", None);
    if let Some(n) = results.sizes().last() {
        let workload = format!("{n} GETs");
        panel(format!("{n} concurrent GETs: CPU time of the client process"), &workload, Some("CPU time"));
        panel(format!("{n} concurrent GETs: memory per request in flight"), &workload, Some("memory per request"));
        panel(format!("{n} concurrent GETs: wall time"), &workload, Some("wall"));
    }

    let height: f64 = panels.iter().map(|p| TITLE + ROW * p.bars.len() as f64 + 18.0).sum::<f64>() + 70.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, "<title>The showdown: {}</title>", escape(&caption(results)));
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let mut y = 10.0;
    for panel in &panels {
        y = draw(&mut out, panel, y);
    }
    let caption = caption(results)
        + " Blue: this book's chapters; orange: the peers. Logarithmic axes; whiskers: smallest to largest run.";
    for (i, line) in report_lines(&caption, 150).iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="10" y="{:.0}" fill="#444">{}</text>"##,
            y + 20.0 + 15.0 * i as f64,
            escape(line)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Draws one panel from `top`; returns where the next one starts.
fn draw(out: &mut String, panel: &Panel, top: f64) -> f64 {
    let values = || panel.bars.iter().flat_map(|(_, row)| [row.value, row.min, row.max]).flatten().filter(|v| *v > 0.0);
    let low = values().fold(f64::INFINITY, f64::min).log10().floor();
    let high = values().fold(0.0, f64::max).log10().ceil().max(low + 1.0);
    let x = |value: f64| BARS_FROM + (value.log10() - low) / (high - low) * (BARS_TO - BARS_FROM);
    let unit = &panel.bars[0].1.unit;
    let _ = writeln!(
        out,
        r#"<text x="10" y="{:.0}" font-size="14" font-weight="bold">{}</text>"#,
        top + 18.0,
        escape(&panel.title)
    );
    let axis_top = top + TITLE - 12.0;
    let axis_bottom = top + TITLE + ROW * panel.bars.len() as f64;
    // One grid line per power of ten, labelled in the panel's unit.
    for decade in low as i32..=high as i32 {
        let value = 10f64.powi(decade);
        let gx = x(value);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{axis_top:.1}" x2="{gx:.1}" y2="{axis_bottom:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" fill="#777" font-size="10" text-anchor="middle">{}</text>"##,
            axis_top - 3.0,
            escape(&grid_label(decade, unit))
        );
    }
    for (i, (label, row)) in panel.bars.iter().enumerate() {
        let Some(value) = row.value else { continue };
        let y = top + TITLE + ROW * i as f64;
        let ours = label.starts_with("ch0");
        let fill = if ours { "#3b78c2" } else { "#e08a3c" };
        let _ = writeln!(
            out,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            BARS_FROM - 8.0,
            y + 14.0,
            escape(label)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{BARS_FROM}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
            y + 3.0,
            (x(value) - BARS_FROM).max(1.0),
            ROW - 6.0
        );
        if let (Some(min), Some(max)) = (row.min, row.max) {
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                x(min.max(1e-9)),
                y + ROW / 2.0,
                x(max.max(1e-9)),
                y + ROW / 2.0
            );
        }
        let end = row.max.map_or(x(value), |max| x(max.max(value)));
        let _ =
            writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, end + 6.0, y + 14.0, escape(&amount(value, unit)));
    }
    axis_bottom + 18.0
}

/// The label of the grid line at 10^`decade` in `unit`: round numbers in
/// the unit that fits (`10 ns`, `1 µs`, `100 ms`, `10 kB`).
fn grid_label(decade: i32, unit: &str) -> String {
    let (steps, names): (&[i32], &[&str]) = match unit {
        "ns" => (&[0, 3, 6, 9], &["ns", "µs", "ms", "s"]),
        "B" => (&[0, 3, 6, 9], &["B", "kB", "MB", "GB"]),
        _ => (&[0], &[""]),
    };
    let i = steps.iter().rposition(|&step| decade >= step).unwrap_or(0);
    let scaled = 10f64.powi(decade - steps[i]);
    format!("{scaled} {}", names[i]).trim_end().to_string()
}

/// `text` folded into lines of at most `width` characters.
fn report_lines(text: &str, width: usize) -> Vec<String> {
    ch01_os_threads::report::wrap(text, width, "").lines().map(str::to_string).collect()
}

/// Text made safe inside SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
