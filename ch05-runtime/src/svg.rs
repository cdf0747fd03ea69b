//! Draws a [`Tracer`](crate::trace::Tracer)'s records as an SVG timeline.
//!
//! One row per task, time from left to right. Each stretch between two
//! events gets the colour of the phase the task was in:
//!
//! - **queued**: woken (or just spawned), waiting in a run queue for its poll;
//! - **running**: being polled (usually a sliver: a poll takes microseconds;
//!   slivers are drawn 3 pixels wide, on top, so that they show);
//! - **waiting**: returned `Pending`, its waker left with the reactor, a
//!   timer, a channel or another thread.
//!
//! A triangle marks each wake, coloured by who woke it; the row ends with a
//! mark for how the task ended. A poll over the runtime's slow-poll
//! threshold is drawn in red, taller than the others, with its length
//! written above it. Each row is named by where its task was spawned. Hovering over a piece in a browser shows its
//! times. The output is plain SVG 1.1: any browser opens it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::id::TaskId;
use crate::trace::{Event, Record, WokenBy, task_names};

/// Drawing sizes, in SVG user units (pixels at 100 %).
const WIDTH: f64 = 1000.0;
const LABEL: f64 = 210.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const ROW: f64 = 22.0;
const BAR: f64 = 12.0;
/// The narrowest a queued or running stretch is drawn, so that it shows.
const SLIVER: f64 = 3.0;
/// The colour of a slow poll.
const SLOW: &str = "#e53e3e";

/// The three phases, their colours and legend text.
const PHASES: [(Phase, &str, &str); 3] = [
    (Phase::Queued, "#f4b942", "queued (woken, waiting for its poll)"),
    (Phase::Running, "#2b6cb0", "running (being polled)"),
    (Phase::Waiting, "#d5dbe3", "waiting (Pending, its waker held elsewhere)"),
];

/// Who woke a task: colour and legend text.
const WAKERS: [(&str, &str); 5] = [
    ("#c53030", "woken by the reactor (I/O)"),
    ("#805ad5", "woken by a timer"),
    ("#2f855a", "woken by another task"),
    ("#dd6b20", "woken by block_on's future"),
    ("#4a5568", "woken by another thread"),
];

/// What a task is doing between two of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Waiting,
}

/// Renders the timeline. `records` in the order they happened (as
/// [`Tracer::records`](crate::trace::Tracer::records) returns them).
pub fn render(records: &[Record]) -> String {
    let names = task_names(records);
    let mut rows: BTreeMap<TaskId, Vec<&Record>> = BTreeMap::new();
    for record in records {
        rows.entry(record.task).or_default().push(record);
    }
    let start = records.iter().map(|r| r.at).min().unwrap_or_default();
    let end = records.iter().map(|r| r.at).max().unwrap_or_default().max(start + Duration::from_millis(1));
    let span_ms = (end - start).as_secs_f64() * 1e3;
    let x = |at: Duration| LABEL + (at.saturating_sub(start).as_secs_f64() * 1e3 / span_ms) * (WIDTH - LABEL - RIGHT);
    let ms = |at: Duration| at.saturating_sub(start).as_secs_f64() * 1e3;

    let axis_y = TOP + rows.len() as f64 * ROW + 10.0;
    let legend_y = axis_y + 40.0;
    let height = legend_y + 5.0 * 18.0 + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Tasks over time: queued, running, waiting</text>\n\
         <text x=\"10\" y=\"38\" fill=\"#4a5568\">{} task(s), {} event(s), {:.1} ms</text>\n",
        rows.len(),
        records.len(),
        span_ms
    );

    for (row, (task, events)) in rows.iter().enumerate() {
        let y = TOP + row as f64 * ROW;
        let bar_y = y + (ROW - BAR) / 2.0;
        let _ = writeln!(svg, "<g class=\"task\" id=\"task-{}\">", task.0);
        let name = names.get(task).cloned().unwrap_or_else(|| task.to_string());
        let _ = writeln!(svg, "<text x=\"10\" y=\"{:.1}\">{}</text>", y + ROW / 2.0 + 4.0, escape(&name));
        // The stretches first, then the marks over them.
        let mut stretches: Vec<Stretch> = Vec::new();
        let mut phase: Option<(Phase, Duration)> = None;
        for record in events {
            let next = match &record.event {
                Event::Spawned(_) | Event::SpawnedBlocking(_) => Some(Phase::Queued),
                Event::Polled(_) => Some(Phase::Running),
                Event::Pending => Some(Phase::Waiting),
                // A wake while running keeps it running (it is polled again at once).
                Event::Woken(_) if phase.is_some_and(|(p, _)| p == Phase::Running) => Some(Phase::Running),
                Event::Woken(_) => Some(Phase::Queued),
                Event::SlowPoll { .. } => {
                    // The poll that just ended was slow: the running stretch up to now.
                    if let Some((Phase::Running, since)) = phase {
                        stretches.push(Stretch { phase: Phase::Running, from: since, to: record.at, slow: true });
                        phase = Some((Phase::Running, record.at));
                    }
                    continue;
                }
                Event::Ready | Event::Panicked(_) | Event::Aborted | Event::ShutDown => None,
            };
            if let Some((current, since)) = phase
                && next != Some(current)
            {
                stretches.push(Stretch { phase: current, from: since, to: record.at, slow: false });
                phase = next.map(|p| (p, record.at));
            } else if phase.is_none() {
                phase = next.map(|p| (p, record.at));
            }
        }
        if let Some((current, since)) = phase {
            stretches.push(Stretch { phase: current, from: since, to: end, slow: false }); // still going at the end
        }
        // Waiting underneath; queued and running (slivers, mostly) on top.
        stretches.sort_by_key(|stretch| stretch.phase != Phase::Waiting);
        for stretch in &stretches {
            bar(&mut svg, stretch, x(stretch.from), x(stretch.to), bar_y, *task, ms(stretch.from), ms(stretch.to));
        }
        for record in events {
            mark(&mut svg, &record.event, x(record.at), bar_y, ms(record.at));
        }
        svg.push_str("</g>\n");
    }

    axis(&mut svg, axis_y, span_ms);
    legend(&mut svg, legend_y);
    svg.push_str("</svg>\n");
    svg
}

/// A stretch of time a task spent in one phase.
#[derive(Debug, Clone, Copy)]
struct Stretch {
    /// What it was doing.
    phase: Phase,
    /// From when.
    from: Duration,
    /// Until when.
    to: Duration,
    /// A poll over the slow-poll threshold.
    slow: bool,
}

/// One phase stretch. Queued and running ones are at least [`SLIVER`]
/// wide so that short ones show; a slow poll is red, taller, and says how
/// long it took.
#[allow(clippy::too_many_arguments)]
fn bar(svg: &mut String, stretch: &Stretch, x0: f64, x1: f64, y: f64, task: TaskId, from: f64, to: f64) {
    let (_, colour, name) = PHASES.iter().find(|(p, _, _)| *p == stretch.phase).copied().unwrap_or(PHASES[0]);
    let name = name.split(' ').next().unwrap_or(name);
    let min = if stretch.phase == Phase::Waiting { 1.0 } else { SLIVER };
    let width = (x1 - x0).max(min);
    if stretch.slow {
        let _ = writeln!(
            svg,
            "<rect x=\"{x0:.2}\" y=\"{:.1}\" width=\"{width:.2}\" height=\"{:.1}\" fill=\"{SLOW}\">\
             <title>{task}: SLOW POLL {from:.2}–{to:.2} ms ({:.1} ms without returning)</title></rect>\
             <text x=\"{:.2}\" y=\"{:.1}\" fill=\"{SLOW}\" font-size=\"10\" font-weight=\"bold\">slow poll: {:.0} ms</text>",
            y - 3.0,
            BAR + 6.0,
            to - from,
            x0 + 2.0,
            y - 4.0,
            to - from
        );
        return;
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{x0:.2}\" y=\"{y:.1}\" width=\"{width:.2}\" height=\"{BAR}\" fill=\"{colour}\">\
         <title>{task}: {name} {from:.2}–{to:.2} ms</title></rect>"
    );
}

/// A wake triangle or an end mark.
fn mark(svg: &mut String, event: &Event, x: f64, y: f64, at: f64) {
    let text = escape(&event.to_string());
    match event {
        Event::Woken(by) => {
            let colour = WAKERS[match by {
                WokenBy::Reactor => 0,
                WokenBy::Timer => 1,
                WokenBy::Task(_) => 2,
                WokenBy::BlockOn => 3,
                WokenBy::Thread(_) => 4,
            }]
            .0;
            let _ = writeln!(
                svg,
                "<path d=\"M{x:.2} {:.1} l-4 -7 h8 z\" fill=\"{colour}\"><title>{at:.2} ms: {text}</title></path>",
                y - 1.0
            );
        }
        Event::Ready => end_mark(svg, x, y, "#2f855a", "✓", at, &text),
        Event::Panicked(_) => end_mark(svg, x, y, "#c53030", "✗", at, &text),
        Event::Aborted | Event::ShutDown => end_mark(svg, x, y, "#4a5568", "■", at, &text),
        Event::Spawned(_) | Event::SpawnedBlocking(_) | Event::Polled(_) | Event::Pending | Event::SlowPoll { .. } => {}
    }
}

fn end_mark(svg: &mut String, x: f64, y: f64, colour: &str, symbol: &str, at: f64, text: &str) {
    let _ = writeln!(
        svg,
        "<text x=\"{:.2}\" y=\"{:.1}\" fill=\"{colour}\" font-weight=\"bold\">{symbol}<title>{at:.2} ms: {text}</title></text>",
        x + 3.0,
        y + BAR - 1.0
    );
}

/// The time axis, with ticks at a round step (1, 2 or 5 times a power of ten ms).
fn axis(svg: &mut String, y: f64, span_ms: f64) {
    let right = WIDTH - RIGHT;
    let _ = writeln!(svg, "<line x1=\"{LABEL}\" y1=\"{y}\" x2=\"{right}\" y2=\"{y}\" stroke=\"#4a5568\"/>");
    let rough = span_ms / 8.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= rough).unwrap_or(power * 10.0);
    let mut t = 0.0;
    while t <= span_ms + 1e-9 {
        let x = LABEL + t / span_ms * (right - LABEL);
        let label = if step >= 1.0 { format!("{t:.0}") } else { format!("{t:.1}") };
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.2}\" y1=\"{y}\" x2=\"{x:.2}\" y2=\"{:.1}\" stroke=\"#4a5568\"/>\
             <text x=\"{x:.2}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            y + 5.0,
            y + 18.0
        );
        t += step;
    }
    let _ =
        writeln!(svg, "<text x=\"{right}\" y=\"{:.1}\" text-anchor=\"end\">ms since the first event</text>", y + 32.0);
}

/// The colours explained: phases in the first column, wakers in the second,
/// end marks in the third.
fn legend(svg: &mut String, y: f64) {
    for (i, (_, colour, text)) in PHASES.iter().enumerate() {
        let row = y + i as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<rect x=\"10\" y=\"{row}\" width=\"14\" height=\"10\" fill=\"{colour}\"/><text x=\"30\" y=\"{:.1}\">{text}</text>",
            row + 9.0
        );
    }
    for (i, (colour, text)) in WAKERS.iter().enumerate() {
        let (column, row) = (360.0 + (i / 3) as f64 * 220.0, y + (i % 3) as f64 * 18.0);
        let _ = writeln!(
            svg,
            "<path d=\"M{:.1} {:.1} l-4 -7 h8 z\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            column + 5.0,
            row + 9.0,
            column + 14.0,
            row + 9.0
        );
    }
    let slow_row = y + PHASES.len() as f64 * 18.0;
    let _ = writeln!(
        svg,
        "<rect x=\"10\" y=\"{:.1}\" width=\"14\" height=\"14\" fill=\"{SLOW}\"/><text x=\"30\" y=\"{:.1}\">\
         slow poll (longer than the slow-poll threshold)</text>",
        slow_row - 2.0,
        slow_row + 9.0
    );
    let ends = [("#2f855a", "✓ ready"), ("#c53030", "✗ panicked"), ("#4a5568", "■ aborted or shut down")];
    for (i, (colour, text)) in ends.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{text}</text>",
            10.0 + i as f64 * 120.0,
            y + 81.0
        );
    }
}

/// Escapes text for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
