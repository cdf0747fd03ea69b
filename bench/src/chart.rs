//! The Showdown page's chart: horizontal bars on a logarithmic axis (the
//! values span five orders of magnitude, from a few nanoseconds for a fiber
//! switch to microseconds for a thread hand-over), one panel per measure,
//! each bar with its value and a whisker from the smallest to the largest
//! run, and the colour key drawn in the picture itself. Plain SVG, written
//! by hand: no dependency, and readable as text.
//!
//! The book shows the picture at the width of its text column (about 750
//! pixels), so the sizes below are chosen for that: the picture is drawn
//! 900 units wide and its smallest text is 14 units, about 12 pixels there.

use std::fmt::Write as _;

use crate::render::{Results, Row, amount, caption, name};

/// Overall width, and where the bars start and end.
const WIDTH: f64 = 900.0;
const BARS_FROM: f64 = 360.0;
const BARS_TO: f64 = 770.0;
/// Height of one bar's row, and of a panel's title.
const ROW: f64 = 26.0;
const TITLE: f64 = 50.0;
/// Text sizes: labels and values, grid labels and caption, panel titles.
const TEXT: f64 = 15.0;
const SMALL: f64 = 14.0;
const HEADING: f64 = 17.0;
/// The colours of our chapters' bars and of the peers'.
const OURS: &str = "#3b78c2";
const PEERS: &str = "#e08a3c";

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
    panel("Switch or yield round trip (lower is better)".into(), name::ROUND_TRIP, None);
    panel("Ping-pong between two tasks, per round trip".into(), name::PING_PONG, None);
    panel("Spawn + complete, per task".into(), name::SPAWN, None);
    panel("Memory per idle task (resident)".into(), name::IDLE_MEMORY, None);
    if let Some(n) = results.sizes().last() {
        let workload = format!("{n} GETs");
        panel(format!("{n} concurrent GETs: CPU time of the client process"), &workload, Some("CPU time"));
        panel(format!("{n} concurrent GETs: memory per request in flight"), &workload, Some("memory per request"));
        panel(format!("{n} concurrent GETs: wall time"), &workload, Some("wall"));
    }

    let legend = 40.0;
    let height: f64 = legend + panels.iter().map(|p| TITLE + ROW * p.bars.len() as f64 + 18.0).sum::<f64>() + 90.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="{TEXT}">"#
    );
    let _ = writeln!(out, "<title>The showdown: {}</title>", escape(&caption(results)));
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    draw_legend(&mut out, 10.0);
    let mut y = 10.0 + legend;
    for panel in &panels {
        y = draw(&mut out, panel, y);
    }
    let caption = caption(results) + " Logarithmic axes.";
    for (i, line) in report_lines(&caption, 105).iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="10" y="{:.0}" fill="#444" font-size="{SMALL}">{}</text>"##,
            y + 20.0 + 17.0 * i as f64,
            escape(line)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The colour key and what a whisker means, on one line from `top`.
fn draw_legend(out: &mut String, top: f64) {
    let mut x = 10.0;
    for (colour, words) in [(OURS, "this book's chapters"), (PEERS, "the peers (tokio, smol, futures, corosensei)")] {
        let _ = writeln!(
            out,
            r#"<rect class="key" x="{x:.0}" y="{top:.0}" width="16" height="16" fill="{colour}"/><text x="{:.0}" y="{:.0}">{}</text>"#,
            x + 22.0,
            top + 13.0,
            escape(words)
        );
        x += 34.0 + 8.0 * words.len() as f64;
    }
    let _ = writeln!(
        out,
        r##"<line x1="{x:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#222"/><text x="{:.0}" y="{:.0}">smallest to largest run</text>"##,
        top + 8.0,
        x + 24.0,
        top + 8.0,
        x + 30.0,
        top + 13.0
    );
}

/// Draws one panel from `top`; returns where the next one starts.
fn draw(out: &mut String, panel: &Panel, top: f64) -> f64 {
    let unit = &panel.bars[0].1.unit;
    let values = || panel.bars.iter().flat_map(|(_, row)| [row.value, row.min, row.max]).flatten().filter(|v| *v > 0.0);
    let axis = Axis::new(unit, values().fold(f64::INFINITY, f64::min), values().fold(0.0, f64::max));
    let x = |value: f64| BARS_FROM + axis.fraction(value) * (BARS_TO - BARS_FROM);
    let _ = writeln!(
        out,
        r#"<text x="10" y="{:.0}" font-size="{HEADING}" font-weight="bold">{}</text>"#,
        top + 20.0,
        escape(&panel.title)
    );
    let axis_top = top + TITLE - 14.0;
    let axis_bottom = top + TITLE + ROW * panel.bars.len() as f64;
    for (value, label) in axis.grid() {
        let gx = x(value);
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{axis_top:.1}" x2="{gx:.1}" y2="{axis_bottom:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" fill="#555" font-size="{SMALL}" text-anchor="middle">{}</text>"##,
            axis_top - 4.0,
            escape(&label)
        );
    }
    for (i, (label, row)) in panel.bars.iter().enumerate() {
        let Some(value) = row.value else { continue };
        let y = top + TITLE + ROW * i as f64;
        let fill = if label.starts_with("ch0") { OURS } else { PEERS };
        let _ = writeln!(
            out,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
            BARS_FROM - 8.0,
            y + 18.0,
            escape(label)
        );
        let _ = writeln!(
            out,
            r#"<rect class="bar" x="{BARS_FROM}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
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
            writeln!(out, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, end + 6.0, y + 18.0, escape(&amount(value, unit)));
    }
    axis_bottom + 18.0
}

/// A logarithmic axis whose grid lines fall on round numbers of its unit:
/// powers of 10 for times (1 µs, 10 µs, ...), powers of 4 for bytes (256 B,
/// 1 KiB, 4 KiB, ...), since the values are printed in binary units.
struct Axis {
    /// The ratio between two grid lines.
    base: f64,
    /// The lowest and highest grid line, as powers of `base`.
    low: i32,
    high: i32,
    /// The unit of the values.
    unit: String,
}

impl Axis {
    fn new(unit: &str, smallest: f64, largest: f64) -> Axis {
        let base = if unit == "B" { 4.0 } else { 10.0 };
        // One grid step lower when the smallest value sits just above a
        // grid line, so that its bar is long enough to see.
        let low = smallest.log(base) - if smallest.log(base).fract() < 0.3 { 1.0 } else { 0.0 };
        let low = low.floor() as i32;
        let high = (largest.log(base).ceil() as i32).max(low + 1);
        Axis { base, low, high, unit: unit.to_string() }
    }

    /// Where `value` falls between the lowest and highest grid line, 0 to 1.
    fn fraction(&self, value: f64) -> f64 {
        (value.log(self.base) - self.low as f64) / (self.high - self.low) as f64
    }

    /// The grid lines: each value and its label.
    fn grid(&self) -> Vec<(f64, String)> {
        (self.low..=self.high)
            .map(|power| self.base.powi(power))
            .map(|value| (value, grid_label(value, &self.unit)))
            .collect()
    }
}

/// A round number in the unit that fits: `10 ns`, `1 µs`, `100 ms`, `256 B`,
/// `4 KiB`, `1 MiB`.
fn grid_label(value: f64, unit: &str) -> String {
    let (steps, names): (&[f64], &[&str]) = match unit {
        "ns" => (&[1.0, 1e3, 1e6, 1e9], &["ns", "µs", "ms", "s"]),
        "B" => (&[1.0, 1024.0, 1024.0 * 1024.0, 1024.0 * 1024.0 * 1024.0], &["B", "KiB", "MiB", "GiB"]),
        _ => (&[1.0], &[""]),
    };
    let i = steps.iter().rposition(|&step| value >= step).unwrap_or(0);
    format!("{} {}", value / steps[i], names[i]).trim_end().to_string()
}

/// `text` folded into lines of at most `width` characters.
fn report_lines(text: &str, width: usize) -> Vec<String> {
    ch01_os_threads::report::wrap(text, width, "").lines().map(str::to_string).collect()
}

/// Text made safe inside SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::SAMPLE;

    #[test]
    fn the_chart_is_an_svg_with_a_bar_per_figure_a_legend_and_the_machine() -> anyhow::Result<()> {
        let svg = svg(&Results::parse(SAMPLE)?);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 8, "four round trips, two CPU times, two wall times: {svg}");
        assert!(svg.contains("Test CPU"), "{svg}");
        // The key is in the picture: both colours, with their words.
        assert!(svg.contains("this book's chapters") && svg.contains("the peers (tokio"), "{svg}");
        assert_eq!(svg.matches(r#"class="key""#).count(), 2, "{svg}");
        // Grid lines at round numbers: 1 ns, 10 ns, 100 ns (the bars span 3.9 to 70 ns).
        for label in [">1 ns<", ">10 ns<", ">100 ns<"] {
            assert!(svg.contains(label), "{label}: {svg}");
        }
        Ok(())
    }

    #[test]
    fn byte_axes_are_in_binary_units_at_powers_of_four() {
        let axis = Axis::new("B", 200.0, 5_000.0);
        let labels: Vec<String> = axis.grid().into_iter().map(|(_, label)| label).collect();
        assert_eq!(labels, ["64 B", "256 B", "1 KiB", "4 KiB", "16 KiB"]);
        assert!((axis.fraction(1024.0) - 0.5).abs() < 1e-9);
        // 1.01 s sits just above 1 s: the axis starts a step lower, at 100 ms.
        let wall: Vec<String> = Axis::new("ns", 1.01e9, 2.7e9).grid().into_iter().map(|(_, label)| label).collect();
        assert_eq!(wall, ["100 ms", "1 s", "10 s"]);
        let time: Vec<String> = Axis::new("ns", 4.0, 70.0).grid().into_iter().map(|(_, label)| label).collect();
        assert_eq!(time, ["1 ns", "10 ns", "100 ns"]);
        assert_eq!(grid_label(1e6, "ns"), "1 ms");
    }
}
