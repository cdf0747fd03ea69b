//! The bench's second table: the same N concurrent GETs on the epoll
//! reactor and on the io_uring completion driver, each run in a fresh
//! process against this chapter's async server in a child process, with
//! the driver's system calls counted in-process.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use ch01_os_threads::bench_kit::{self, BenchServer, Outcome, Progress, Sample};
use ch01_os_threads::report::{self, Figures, Table};
use ch01_os_threads::trace::say_aside;
use ch05_runtime::Runtime;
use ch05_runtime::uring::{self, Unavailable};

/// Runs per figure; the table shows the median.
const RUNS: usize = 3;

/// The columns: `bench-run gets <how>` for each, and its title. `single`
/// is the first table's single-threaded epoll runtime (the `bench-run`
/// it already has); the others are this file's.
const HOW: [(&str, &str); 3] = [
    ("single", "ch05, epoll reactor thread"),
    ("uring-single", "ch05, io_uring driver"),
    ("uring-multi", "ch05 2 workers, io_uring driver"),
];

/// The driver's counts a child prints before its sample: this word, then
/// `enters wakeups operations cancels`.
const COUNTS: &str = "uring-counts";

/// The table, or `None` (after saying why) where io_uring is not
/// available. Adds its figures to `figures`.
pub fn table(gets: usize, delay_ms: u64, figures: &mut Figures, json: bool) -> anyhow::Result<Option<Table>> {
    if let Err(e) = uring::start() {
        let why = Unavailable::from_error(&e).ok_or(e).context("starting the io_uring driver")?;
        say_aside(json, "main", &format!("no io_uring table: io_uring is not available here ({why})"));
        return Ok(None);
    }
    let server = BenchServer::from_env_or_child().context("starting the async delay server")?;
    let mut progress = Progress::new(HOW.len() * RUNS);
    let (n, delay, addr) = (gets.to_string(), delay_ms.to_string(), server.addr.to_string());
    let mut columns = Vec::new();
    for (how, _) in HOW {
        let mut runs = Vec::new();
        for run in 1..=RUNS {
            progress.start(&format!("gets {how} {n} run {run}/{RUNS}"));
            let args = ["gets", how, &n, &delay, &addr].map(String::from);
            let (sample, lines) = bench_kit::run_in_child_with_lines(&args)?;
            let counts = lines.iter().find_map(|line| line.strip_prefix(COUNTS)).map(parse_counts).transpose()?;
            runs.push(Run { sample, counts });
            progress.finish_step();
        }
        columns.push(column(how, gets, &runs, figures));
    }
    progress.clear();
    say_aside(json, "main", &format!("the io_uring table's GETs went to the {}", server.describe()));

    let mut header = vec![format!("{gets} GETs at once, {delay_ms} ms each")];
    header.extend(HOW.map(|(_, title)| title.to_string()));
    let mut table = Table::new(&header);
    for (i, label) in ROWS.iter().enumerate() {
        let mut row = vec![label.to_string()];
        row.extend(columns.iter().map(|column| column[i].clone()));
        table.row(&row);
    }
    Ok(Some(table))
}

/// The rows, in the order [`column`] fills them.
const ROWS: [&str; 5] = [
    "wall",
    "CPU time",
    "memory per request",
    "system calls per request (the driver's)",
    "io_uring operations per request",
];

/// One run in a child: its sample, and the driver's counts if it printed them.
struct Run {
    sample: Sample,
    counts: Option<[u64; 4]>,
}

/// One column's cells (see [`ROWS`]), from its runs' medians.
fn column(how: &str, gets: usize, runs: &[Run], figures: &mut Figures) -> [String; 5] {
    let median = |f: fn(&Run) -> u64| report::median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or_default();
    let wall = Duration::from_nanos(median(|run| run.sample.wall.as_nanos() as u64));
    let cpu = Duration::from_nanos(median(|run| run.sample.cpu.as_nanos() as u64));
    let memory = median(|run| run.sample.rss_rise) / gets.max(1) as u64;
    let failed: usize = runs.iter().map(|run| gets - run.sample.outcome.answered).sum();
    let name = format!("{gets} gets, {how}");
    figures
        .time(&format!("{name}: wall"), wall)
        .time(&format!("{name}: CPU time"), cpu)
        .bytes(&format!("{name}: memory per request"), memory)
        .number(&format!("{name}: failed"), failed as f64, "count");
    let failed = if failed > 0 { format!(" ({failed} failed)") } else { String::new() };
    let (syscalls, operations) = if runs.iter().all(|run| run.counts.is_some()) {
        let per = |f: fn(&Run) -> u64| median(f) as f64 / gets.max(1) as f64;
        let enters = per(|run| run.counts.map_or(0, |c| c[0]));
        let wakeups = per(|run| run.counts.map_or(0, |c| c[1]));
        let operations = per(|run| run.counts.map_or(0, |c| c[2]));
        let cancels = per(|run| run.counts.map_or(0, |c| c[3]));
        figures
            .number(&format!("{name}: io_uring_enter per request"), enters, "count")
            .number(&format!("{name}: eventfd writes per request"), wakeups, "count")
            .number(&format!("{name}: operations per request"), operations, "count");
        (
            format!("io_uring_enter {enters:.2}, eventfd write {wakeups:.2}"),
            format!("{operations:.1}, and {cancels:.1} ASYNC_CANCEL"),
        )
    } else {
        ("-".to_string(), "-".to_string())
    };
    [report::duration(wall) + &failed, report::duration(cpu), report::bytes(memory), syscalls, operations]
}

/// `enters wakeups operations cancels`, as a child printed them.
fn parse_counts(text: &str) -> io::Result<[u64; 4]> {
    let numbers: Vec<u64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    numbers.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("not driver counts: {text:?}")))
}

/// The legend under the table.
pub fn legend() -> String {
    let text = format!(
        "Each column: {RUNS} runs, each in a fresh process, medians; one task per GET running http::get (epoll) or \
         uring::http::get (io_uring), against this chapter's async server in a child process. The driver and its \
         ring are started before the clock, as in a program that runs for long. System calls per request: those \
         of the completion driver, counted in-process (its thread's io_uring_enter calls, and the eventfd writes \
         that wake it); each request also makes a socket and a close, on the executor's thread, under either \
         driver (chapter 3's bench counts the epoll loop's). Operations per request: CONNECT, SEND, RECV until \
         the end, and one TIMEOUT per time limit (connect, answer), each cancelled when the GET finishes first."
    );
    report::wrap(&text, 100, "")
}

/// The hidden `bench-run gets uring-<flavor> <n> <delay> <addr>` run: the
/// GETs on the driver in this fresh process, the driver's counts, the sample.
pub fn run_one(flavor: &str, n: usize, path: &str, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let addr = addr.context("bench-run gets uring-* needs the server's address")?;
    let runtime = match flavor {
        "single" => Runtime::new()?,
        "multi" => Runtime::builder().worker_threads(2).build()?,
        _ => anyhow::bail!("bench-run gets uring-{flavor}: the flavors are uring-single and uring-multi"),
    };
    uring::start().context("starting the io_uring driver")?;
    let before = uring::stats();
    let sample = bench_kit::measure_run(|| {
        let results = uring::http::get_many(&runtime, addr, path, n);
        let answered = results.iter().filter(|r| r.as_ref().is_ok_and(|response| response.status == 200)).count();
        let first_error = results.into_iter().find_map(Result::err).map(|e| e.to_string());
        Ok(Outcome { answered, first_error, polls: None })
    })?;
    let made = uring::stats() - before;
    println!("{COUNTS} {} {} {} {}", made.enters, made.wakeups, made.operations, made.cancels);
    bench_kit::print_sample(&sample)?;
    Ok(())
}
