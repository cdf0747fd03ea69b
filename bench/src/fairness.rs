//! Who gets the CPU: two rows that measure fairness, not speed.
//!
//! - **Timer lateness** ([`lateness`]): a task sleeps 1 ms again and again
//!   (each sleep armed at another point of a millisecond, see [`phase`])
//!   and notes how late each sleep ends, first alone, then beside a task
//!   that yields in a loop (a "spinner": always ready to run, never
//!   waiting for anything). An executor that always runs the ready task
//!   first and looks at its timers only when nothing is ready never wakes
//!   the sleeper. The spinner uses each runtime's own `yield_now`, as its
//!   users would; the Showdown page says what each one does. The spinner
//!   gives up after a limit, so a starved run ends: the sleeps it held up
//!   then end late by about that limit, and the run says it was starved.
//! - **Flooding clients** ([`flood`]): two clients each send a request and
//!   then keep writing bytes during their delay; how long does a third
//!   client wait for the answer to `GET /0/hi`? Chapter 1's thread per
//!   connection server, and chapter 5's async server on one thread. The
//!   wait is bounded: no answer within the limit is a result, not a hang.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::client::{self, Timeouts};
use ch01_os_threads::http;

use crate::micro::{self, CH05, CH05_MULTI, CH05_OWN, SMOL_LOCAL, TOKIO, TOKIO_MULTI};

/// The runtimes whose timer lateness is measured, in the table's order.
pub const LATENESS: [&str; 6] = [CH05, CH05_OWN, CH05_MULTI, TOKIO, TOKIO_MULTI, SMOL_LOCAL];

/// How the lateness row is run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long each sleep asks for.
    pub timer: Duration,
    /// Sleeps per run, alone and again beside the spinner.
    pub samples: usize,
    /// When the spinner gives up, if nothing stopped it before.
    pub spin_limit: Duration,
}

/// What one run of the lateness row saw.
#[derive(Debug, Clone, Default)]
pub struct Lateness {
    /// How late each sleep ended with nothing else running.
    pub alone: Vec<Duration>,
    /// How late each sleep ended beside the spinner.
    pub beside: Vec<Duration>,
    /// The spinner reached its limit before the sleeps were done: the
    /// executor ran nothing else while a task was ready.
    pub starved: bool,
}

/// Where in a millisecond the `i`th sleep is armed: 0 to 999 µs, in steps
/// of 382 µs (a step that spreads any number of sleeps over the whole
/// millisecond: ten of every hundred fall in each tenth of it).
///
/// Sleeps armed back to back would each start just after the previous one
/// ended, and a runtime whose timers count whole milliseconds (tokio's
/// wheel rounds a deadline up to the next millisecond tick, and fires at
/// ticks) would then meet its worst case every time: the row would measure
/// that coincidence, not the runtime. A timer in a real program is armed at
/// any moment.
fn phase(i: usize) -> Duration {
    Duration::from_micros((i as u64 * 382) % 1_000)
}

/// Waits `wait` without giving the thread up (see [`phase`]).
fn busy_wait(wait: Duration) {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// `samples` sleeps of `timer`, one after the other, each armed at another
/// [`phase`]; how late each ended. With `spinner` given, stops early once
/// the spinner has ended (sleeps after that would measure nothing).
macro_rules! timer_samples {
    ($sleep:expr, $timing:expr, $spinner:expr) => {{
        let (timing, spinner): (Timing, Option<Arc<AtomicBool>>) = ($timing, $spinner);
        async move {
            let mut late = Vec::with_capacity(timing.samples);
            for i in 0..timing.samples {
                if spinner.as_ref().is_some_and(|spinning| !spinning.load(Ordering::Acquire)) {
                    break;
                }
                busy_wait(phase(i));
                let started = Instant::now();
                $sleep(timing.timer).await;
                late.push(started.elapsed().saturating_sub(timing.timer));
            }
            late
        }
    }};
}

/// A task that yields in a loop until `stop` is set or `limit` has passed;
/// clears `spinning` when it ends and says whether the limit ended it.
macro_rules! spinner {
    ($yield_now:expr, $limit:expr, $stop:expr, $spinning:expr) => {{
        let (limit, stop, spinning): (Duration, Arc<AtomicBool>, Arc<AtomicBool>) = ($limit, $stop, $spinning);
        async move {
            let started = Instant::now();
            let mut yields: u64 = 0;
            let gave_up = loop {
                if stop.load(Ordering::Acquire) {
                    break false;
                }
                // Reading the clock costs tens of nanoseconds: every 64th turn.
                if yields % 64 == 0 && started.elapsed() > limit {
                    break true;
                }
                $yield_now.await;
                yields += 1;
            };
            spinning.store(false, Ordering::Release);
            gave_up
        }
    }};
}

/// The lateness row on chapter 5's and tokio's runtimes, whose `spawn`s
/// have the same shape: the sleeps alone, then the spinner and the sleeps
/// side by side in two tasks, the `block_on` future only waiting for them.
macro_rules! lateness_on {
    ($spawn:path, $sleep:expr, $yield_now:expr, $timing:expr) => {{
        let timing: Timing = $timing;
        async move {
            let join = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
            let alone = $spawn(timer_samples!($sleep, timing, None)).await.map_err(|e| join(&e))?;
            let (stop, spinning) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
            let spinner = $spawn(spinner!($yield_now, timing.spin_limit, Arc::clone(&stop), Arc::clone(&spinning)));
            let sleeper = $spawn(timer_samples!($sleep, timing, Some(spinning)));
            let beside = sleeper.await.map_err(|e| join(&e))?;
            stop.store(true, Ordering::Release);
            let starved = spinner.await.map_err(|e| join(&e))? || beside.len() < timing.samples;
            io::Result::Ok(Lateness { alone, beside, starved })
        }
    }};
}

/// One run of the lateness row on `who` (one of [`LATENESS`]).
pub fn lateness(who: &str, timing: Timing) -> io::Result<Lateness> {
    match who {
        CH05 | CH05_OWN | CH05_MULTI => {
            let work = lateness_on!(ch05_runtime::spawn, ch05_runtime::time::sleep, ch05_runtime::yield_now(), timing);
            micro::ch05_runtime(who)?.block_on(work)
        }
        TOKIO | TOKIO_MULTI => {
            let work = lateness_on!(tokio::spawn, tokio::time::sleep, tokio::task::yield_now(), timing);
            micro::tokio_runtime(who)?.block_on(work)
        }
        SMOL_LOCAL => smol_lateness(timing),
        other => Err(micro::unknown(other)),
    }
}

/// The lateness row on smol: async-executor's `LocalExecutor` run by
/// `async_io::block_on`, sleeps on async-io's `Timer`, the spinner on
/// `futures_lite::future::yield_now` (smol's `yield_now`).
fn smol_lateness(timing: Timing) -> io::Result<Lateness> {
    let sleep = |timer: Duration| async move {
        async_io::Timer::after(timer).await;
    };
    let executor = async_executor::LocalExecutor::new();
    let work = async {
        let alone = executor.spawn(timer_samples!(sleep, timing, None)).await;
        let (stop, spinning) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(true)));
        let spinner = executor.spawn(spinner!(
            futures_lite::future::yield_now(),
            timing.spin_limit,
            Arc::clone(&stop),
            Arc::clone(&spinning)
        ));
        let beside = executor.spawn(timer_samples!(sleep, timing, Some(spinning))).await;
        stop.store(true, Ordering::Release);
        let starved = spinner.await || beside.len() < timing.samples;
        Lateness { alone, beside, starved }
    };
    Ok(async_io::block_on(executor.run(work)))
}

/// The servers flooded, in the table's order: (id for `bench-run`, name).
pub const SERVERS: [(&str, &str); 2] =
    [("ch01", "ch01 delay server, thread per connection"), ("ch05", "ch05 async delay server, 1 thread")];

/// How the flooding row is run.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Clients that flood.
    pub flooders: usize,
    /// How long the flooders write before the victim asks.
    pub head_start: Duration,
    /// How long the victim waits for its answer (connect, then read).
    pub limit: Duration,
}

/// Bytes a flooder writes at a time.
const FLOOD_CHUNK: usize = 16 * 1024;

/// One run of the flooding row against `server` (an id of [`SERVERS`]):
/// how long the victim's `GET /0/hi` took, or `None` for no answer within
/// `flood.limit`.
pub fn flood(server: &str, flood: Flood) -> io::Result<Option<Duration>> {
    let grace = Duration::from_millis(200);
    match server {
        "ch01" => {
            use ch01_os_threads::delay_server::{Config, DelayServer};
            let server = DelayServer::start(Config { shutdown_grace: grace, ..Config::default() })?;
            let answer = flooded(server.addr(), flood);
            server.shutdown()?;
            answer
        }
        "ch05" => {
            use ch05_runtime::server::{AsyncDelayServer, Config};
            let server = AsyncDelayServer::start(Config { shutdown_grace: grace, ..Config::default() })?;
            let answer = flooded(server.addr(), flood);
            server.shutdown()?;
            answer
        }
        other => Err(micro::unknown(other)),
    }
}

/// The flood itself, against the server at `addr`.
fn flooded(addr: SocketAddr, flood: Flood) -> io::Result<Option<Duration>> {
    // The flooders' delay outlasts the victim's wait: they are inside their
    // delay, sending, the whole time the victim waits.
    let delay_ms = (flood.head_start + flood.limit).as_millis() as u64 + 2_000;
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..flood.flooders)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || flood_until(addr, delay_ms, &stop))
        })
        .collect();
    // A bench, not a test: the flood gets a head start by the clock.
    thread::sleep(flood.head_start);
    let started = Instant::now();
    let victim = client::get_with(addr, &http::path(0, "hi"), Timeouts { connect: flood.limit, read: flood.limit });
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    for flooder in flooders {
        flooder.join().map_err(|_| io::Error::other("a flooding client panicked"))??;
    }
    match victim {
        Ok(answer) if answer.status == 200 && answer.body == "hi" => Ok(Some(took)),
        Ok(answer) => Err(io::Error::other(format!("the victim got {} {:?}", answer.status, answer.body))),
        Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One flooding client: a complete request for a long delay, then bytes,
/// as fast as the server takes them, until `stop`.
fn flood_until(addr: SocketAddr, delay_ms: u64, stop: &AtomicBool) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    // A server that stops reading fills the socket's buffers: then a write
    // waits, at most this long, and the loop looks at `stop` again.
    stream.set_write_timeout(Some(Duration::from_millis(20)))?;
    stream.write_all(&http::request(addr, &http::path(delay_ms, "flood")))?;
    let chunk = [b'x'; FLOOD_CHUNK];
    while !stop.load(Ordering::Acquire) {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => {}
            // The server closed on us (a server may cut a misbehaving client off).
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_are_armed_all_over_a_millisecond() {
        let mut phases: Vec<u128> = (0..100).map(|i| phase(i).as_micros()).collect();
        assert!(phases.iter().all(|&p| p < 1_000));
        phases.sort_unstable();
        phases.dedup();
        assert_eq!(phases.len(), 100, "100 sleeps, 100 different phases");
        // Evenly: each tenth of the millisecond gets ten.
        for tenth in 0..10 {
            assert_eq!(phases.iter().filter(|&&p| p / 100 == tenth).count(), 10, "{phases:?}");
        }
    }
}
