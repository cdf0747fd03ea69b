//! Part 8 of the demo: who gets the CPU.
//!
//! A busy task next to a 10 ms sleep and a GET, three ways: a receiver that
//! always finds a message waiting (the cooperative budget off, then on), a
//! task that yields in a loop (the injector looked at only when the local
//! queue is empty, then every 31 polls), and a task that computes for a
//! while without reaching a leaf future (which nothing can stop, and the
//! slow-poll detector reports). Every number printed is measured.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ch01_os_threads::http::path;
use ch01_os_threads::say;
use ch01_os_threads::trace::section;
use ch05_runtime::coop::{DEFAULT_BUDGET, yield_now};
use ch05_runtime::current_thread::INJECTOR_INTERVAL;
use ch05_runtime::time::sleep;
use ch05_runtime::trace::Tracer;
use ch05_runtime::{Runtime, channel, http, spawn, svg};

/// The sleep beside the busy task.
const NAP: Duration = Duration::from_millis(10);
/// The GET's delay at the server.
const GET_DELAY: u64 = 50;
/// Messages waiting for the busy receiver.
const MESSAGES: u32 = 20_000;
/// The receiver's work per message (computed, so the same in debug and
/// release builds): 100 ms for all of them.
const WORK: Duration = Duration::from_micros(5);
/// The most yields the yielding task makes before it gives up.
const SPINS: u32 = 200_000;
/// How long the task of the slow-poll example computes.
const COMPUTE: Duration = Duration::from_millis(100);
/// The slow-poll threshold of part 8's runtimes (set, so that release
/// builds report too).
const SLOW: Duration = Duration::from_millis(10);

// ANCHOR: part
/// Part 8. Not traced by `--trace`: its busy tasks poll hundreds of
/// thousands of times (`--fairness-svg` draws a smaller run).
pub fn part(addr: SocketAddr) -> anyhow::Result<()> {
    section(8, "who gets the CPU: a busy task beside a sleep and a GET");
    say!("main", "beside a busy task: a {} ms sleep and a GET with a {GET_DELAY} ms delay", NAP.as_millis());

    let work = MESSAGES * WORK;
    say!("main", "(a) a receiver with {MESSAGES} messages waiting, each recv() ready at once,");
    say!("main", "    and {} µs of work per message ({} ms in all)", WORK.as_micros(), work.as_millis());
    for budget in [None, Some(DEFAULT_BUDGET)] {
        let runtime = Runtime::builder().coop_budget(budget).slow_poll_threshold(Some(SLOW)).build()?;
        let seen = runtime.block_on(beside(addr, drain(MESSAGES)))?;
        let rule = match budget {
            None => "budget off".to_string(),
            Some(units) => format!("budget {units}"),
        };
        say!("main", "    {rule}: {}", seen.describe());
        say!(
            "main",
            "    {:w$}  the receiver ran {} poll(s) in {} ms",
            "",
            seen.busy_polls,
            seen.busy_ms(),
            w = rule.len()
        );
    }

    say!("main", "(b) a task that yields in a loop (until the sleep is over, or {SPINS} times)");
    for interval in [u32::MAX, INJECTOR_INTERVAL] {
        let runtime = Runtime::builder().injector_interval(interval).build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = runtime.block_on(beside_stopping(addr, Arc::clone(&stop), spin(stop)))?;
        let rule = if interval == u32::MAX {
            "injector taken only when the local queue is empty".to_string()
        } else {
            format!("injector taken first every {interval} polls")
        };
        say!("main", "    {rule}:");
        say!("main", "      {}; the task yielded {} times", seen.describe(), seen.busy_polls - 1);
    }

    say!("main", "(c) a task that computes for {} ms and reaches no .await in between:", COMPUTE.as_millis());
    say!("main", "    it spends no budget, so nothing can stop it");
    let runtime = Runtime::builder().slow_poll_threshold(Some(SLOW)).build()?;
    let seen = runtime.block_on(beside(addr, compute(COMPUTE)))?;
    say!("main", "    {}", seen.describe());
    say!("main", "    the runtime can only report such a poll: SLOW POLL on stderr (once per task)");
    say!("main", "    and in the trace. Chapter 2 shows preemption, which takes the CPU back.");
    Ok(())
}
// ANCHOR_END: part

/// What happened beside the busy task.
struct Beside {
    /// How late the sleep woke.
    sleep_late: Duration,
    /// How long the GET took from its start.
    get_took: Duration,
    /// How long the busy task ran, from its spawn to its end.
    busy_took: Duration,
    /// How many times the busy task was polled.
    busy_polls: u32,
}

impl Beside {
    fn describe(&self) -> String {
        format!("the sleep woke {} ms late, the GET took {} ms", self.sleep_late.as_millis(), self.get_took.as_millis())
    }

    fn busy_ms(&self) -> u128 {
        self.busy_took.as_millis()
    }
}

/// Starts the sleep and the GET, then `busy` beside them, and measures.
async fn beside(addr: SocketAddr, busy: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<Beside> {
    beside_stopping(addr, Arc::new(AtomicBool::new(false)), busy).await
}

/// The same, and sets `stop` when the sleep is over.
async fn beside_stopping(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    busy: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Beside> {
    let sleeper = spawn(async move {
        let asked = Instant::now();
        sleep(NAP).await;
        stop.store(true, Ordering::Relaxed);
        asked.elapsed().saturating_sub(NAP)
    });
    let get = spawn(async move {
        let asked = Instant::now();
        http::get(addr, &path(GET_DELAY, "beside")).await?.into_ok_body()?;
        Ok::<_, std::io::Error>(asked.elapsed())
    });
    // Let both start (the timer set, the request on its way) before the
    // busy task is spawned: what is measured then is how long they wait
    // for the thread, not when they began.
    yield_now().await;
    let busy = spawn(CountPolls { future: Box::pin(busy), polls: 0, first: None });
    let sleep_late = sleeper.await.context("the sleeper")?;
    let get_took = get.await.context("the GET")??;
    let (busy_polls, busy_took) = busy.await.context("the busy task")?;
    Ok(Beside { sleep_late, get_took, busy_took, busy_polls })
}

/// Receives `messages` messages that are all there before it starts, and
/// works [`WORK`] on each.
fn drain(messages: u32) -> impl Future<Output = ()> + Send + 'static {
    let (tx, mut rx) = channel::channel();
    for n in 0..messages {
        let _ = tx.send(n);
    }
    drop(tx);
    async move {
        while rx.recv().await.is_some() {
            work_for(WORK);
        }
    }
}

/// Yields until `stop` is set, or `SPINS` times.
async fn spin(stop: Arc<AtomicBool>) {
    let mut spins = 0;
    while !stop.load(Ordering::Relaxed) && spins < SPINS {
        yield_now().await;
        spins += 1;
    }
}

/// Computes for `how_long`, in one poll.
async fn compute(how_long: Duration) {
    work_for(how_long);
}

/// Computes (adds numbers) for `how_long`.
fn work_for(how_long: Duration) {
    let started = Instant::now();
    let mut sum = 0u64;
    while started.elapsed() < how_long {
        sum = sum.wrapping_add(std::hint::black_box(1));
    }
    std::hint::black_box(sum);
}

/// A future that counts its polls, and returns the count and the time from
/// its first poll to its end.
struct CountPolls<F> {
    future: Pin<Box<F>>,
    polls: u32,
    first: Option<Instant>,
}

impl<F: Future<Output = ()>> Future for CountPolls<F> {
    type Output = (u32, Duration);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(u32, Duration)> {
        self.polls += 1;
        let first = *self.first.get_or_insert_with(Instant::now);
        match self.future.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready((self.polls, first.elapsed())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `--fairness-svg DIR`: part 8 (a) traced, budget off and on, drawn as
/// `DIR/ch05-budget-off.svg` and `DIR/ch05-budget-on.svg` (the pictures on
/// the page).
pub fn pictures(dir: &str) -> anyhow::Result<()> {
    // Fewer messages than the demo: the picture is about the shape, and
    // every poll is a bar.
    const PICTURE_MESSAGES: u32 = 4_000;
    let server = ch01_os_threads::delay_server::DemoServer::from_env_or_start(Default::default())
        .context("starting the delay server")?;
    for (budget, name) in [(None, "ch05-budget-off.svg"), (Some(DEFAULT_BUDGET), "ch05-budget-on.svg")] {
        let tracer = Tracer::new(false, true);
        let runtime = Runtime::builder().trace(tracer.clone()).coop_budget(budget).build()?;
        let seen = runtime.block_on(beside(server.addr(), drain(PICTURE_MESSAGES)))?;
        let file = std::path::Path::new(dir).join(name);
        std::fs::write(&file, svg::render(&tracer.records())).with_context(|| format!("writing {}", file.display()))?;
        say!("main", "wrote {}: {}; the receiver ran {} poll(s)", file.display(), seen.describe(), seen.busy_polls);
    }
    Ok(())
}
