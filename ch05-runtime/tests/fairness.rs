//! Who gets the CPU: a task that always finds work must still let the
//! others run. Each test bounds its busy task by a count, never by time,
//! and asserts what ran before that count was reached: a starved task is a
//! failure, not a hang.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ch05_runtime::channel::channel;
use ch05_runtime::coop::{self, yield_now};
use ch05_runtime::time::{sleep, timeout};
use ch05_runtime::trace::{Event, Tracer};
use ch05_runtime::{Builder, IoDriver, Runtime, spawn};

/// The most yields a spinner makes: far more than fit in the few
/// milliseconds the tests wait for, so reaching it means starvation.
const SPINS: usize = 20_000_000;

/// Every kind of runtime, named for the failure messages.
fn runtimes(customise: impl Fn(Builder) -> Builder) -> io::Result<Vec<(&'static str, Runtime)>> {
    Ok(vec![
        ("single-threaded, reactor thread", customise(Runtime::builder()).build()?),
        ("single-threaded, own reactor", customise(Runtime::builder().io_driver(IoDriver::ExecutorThread)).build()?),
        ("2 workers", customise(Runtime::builder().worker_threads(2)).build()?),
    ])
}

/// A task that yields until `stop` is set or it has yielded `SPINS` times;
/// returns how many times it yielded.
async fn spinner(stop: Arc<AtomicBool>) -> usize {
    let mut spins = 0;
    while !stop.load(Ordering::Relaxed) && spins < SPINS {
        yield_now().await;
        spins += 1;
    }
    spins
}

#[test]
fn yielding_tasks_do_not_starve_a_sleep() -> io::Result<()> {
    for (kind, runtime) in runtimes(|builder| builder)? {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = runtime.block_on(async {
            // One more spinner than there are workers, so that a
            // multi-threaded runtime is as busy as a single-threaded one.
            let spinners: Vec<_> = (0..3).map(|_| spawn(spinner(Arc::clone(&stop)))).collect();
            let sleeper = {
                let stop = Arc::clone(&stop);
                spawn(async move {
                    sleep(Duration::from_millis(10)).await;
                    stop.store(true, Ordering::Relaxed);
                })
            };
            sleeper.await.expect("the sleeper finished");
            let mut spins = Vec::new();
            for spinner in spinners {
                spins.push(spinner.await.expect("the spinner finished"));
            }
            spins
        });
        assert!(
            spins.iter().all(|&n| n < SPINS),
            "{kind}: the sleep's wake waited until the spinners gave up ({spins:?} yields)"
        );
    }
    Ok(())
}

#[test]
fn a_timeout_fires_beside_a_spinner_on_its_own_reactor() -> io::Result<()> {
    // Its timer lives in the runtime's own reactor, which nothing turns
    // while tasks are always ready, unless the loop does it by itself.
    let runtime = Runtime::builder().io_driver(IoDriver::ExecutorThread).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (fired, spins) = runtime.block_on(async {
        let spinning = spawn(spinner(Arc::clone(&stop)));
        let limited = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
        stop.store(true, Ordering::Relaxed);
        (limited.is_err(), spinning.await.expect("the spinner finished"))
    });
    assert!(fired, "the timeout of a pending future fires");
    assert!(spins < SPINS, "the timer fired only once the spinner gave up ({spins} yields)");
    Ok(())
}

#[test]
fn a_busy_receiver_lets_a_new_task_run() -> io::Result<()> {
    const MESSAGES: usize = 100_000;
    let single = |driver| Runtime::builder().io_driver(driver);
    let kinds = [
        ("single-threaded, reactor thread", single(IoDriver::ReactorThread)),
        ("single-threaded, own reactor", single(IoDriver::ExecutorThread)),
        ("1 worker", Runtime::builder().worker_threads(1)),
    ];
    for (kind, builder) in kinds {
        let runtime = builder.build()?;
        let received = Arc::new(AtomicUsize::new(0));
        // All in one task, so that on the worker too both tasks are queued,
        // receiver first, before either runs.
        let counted = Arc::clone(&received);
        let seen_by_newcomer = runtime
            .block_on(runtime.spawn(async move {
                let received = counted;
                // Every message is there before the receiver starts: each
                // `recv` is ready at once, the whole way through.
                let (tx, mut rx) = channel();
                for n in 0..MESSAGES {
                    tx.send(n).expect("the receiver is alive");
                }
                drop(tx);
                let counter = Arc::clone(&received);
                let receiver = spawn(async move {
                    while rx.recv().await.is_some() {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
                let counter = Arc::clone(&received);
                let newcomer = spawn(async move { counter.load(Ordering::Relaxed) });
                let seen = newcomer.await.expect("the newcomer ran");
                receiver.await.expect("the receiver finished");
                seen
            }))
            .expect("the test task finished");
        assert_eq!(received.load(Ordering::Relaxed), MESSAGES);
        assert!(
            seen_by_newcomer < MESSAGES,
            "{kind}: the task spawned beside the receiver first ran after all {MESSAGES} messages"
        );
        assert!(
            seen_by_newcomer <= coop::DEFAULT_BUDGET as usize,
            "{kind}: the receiver took {seen_by_newcomer} messages before it yielded, more than its budget"
        );
    }
    Ok(())
}

#[test]
fn without_a_budget_the_busy_receiver_keeps_its_thread() -> io::Result<()> {
    // The starvation the budget prevents, shown (the demo prints it too).
    const MESSAGES: usize = 10_000;
    let runtime = Runtime::builder().coop_budget(None).build()?;
    let seen_by_newcomer = runtime.block_on(async {
        let (tx, mut rx) = channel();
        for n in 0..MESSAGES {
            tx.send(n).expect("the receiver is alive");
        }
        drop(tx);
        let received = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&received);
        let receiver = spawn(async move {
            while rx.recv().await.is_some() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let newcomer = spawn(async move { received.load(Ordering::Relaxed) });
        let seen = newcomer.await.expect("the newcomer ran");
        receiver.await.expect("the receiver finished");
        seen
    });
    assert_eq!(seen_by_newcomer, MESSAGES, "with no budget, one poll takes every message");
    Ok(())
}

#[test]
fn a_timeout_fires_around_a_future_that_spends_every_budget() -> io::Result<()> {
    // The inner future is always ready and spends the whole budget on every
    // poll: the timeout must still see its deadline.
    for (kind, runtime) in runtimes(|builder| builder)? {
        let timed_out = runtime.block_on(async {
            let always_ready = async {
                for _ in 0..SPINS {
                    coop::consume_budget().await;
                }
            };
            timeout(Duration::from_millis(10), always_ready).await.is_err()
        });
        assert!(timed_out, "{kind}: the timeout waited for a future that never ran out of work");
    }
    Ok(())
}

#[test]
fn every_ready_leaf_future_spends_one_unit() -> io::Result<()> {
    /// Units spent by awaiting `future` (which must be ready at once, so
    /// that both readings fall in one poll).
    async fn spent<T>(future: impl std::future::Future<Output = T>) -> (u32, T) {
        let before = coop::budget_remaining().expect("a task's poll has a budget");
        let output = future.await;
        (before - coop::budget_remaining().expect("still the same poll"), output)
    }
    let runtime = Runtime::new()?;
    let units = runtime.block_on(runtime.spawn(async {
        let mut units = Vec::new();
        let (tx, mut rx) = channel();
        tx.send(1).expect("the receiver is alive");
        units.push(("channel recv", spent(rx.recv()).await.0));
        units.push(("sleep that is due", spent(sleep(Duration::ZERO)).await.0));
        let finished = spawn(async {});
        yield_now().await; // lets it run: its handle is then ready
        units.push(("JoinHandle", spent(finished).await.0));
        let blocking = ch05_runtime::spawn_blocking(|| ());
        while !blocking.is_finished() {
            yield_now().await;
        }
        units.push(("spawn_blocking's JoinHandle", spent(blocking).await.0));
        let mut listener = ch05_runtime::net::TcpListener::bind(([127, 0, 0, 1], 0).into())?;
        let addr = listener.local_addr()?;
        let _client = std::net::TcpStream::connect(addr)?; // queued in the kernel: accept is ready
        let (mut stream, _) = {
            let (units_accept, accepted) = spent(listener.accept()).await;
            units.push(("accept", units_accept));
            accepted?
        };
        units.push(("write", spent(stream.write(b"x")).await.0));
        Ok::<_, io::Error>(units)
    }))??;
    for (what, spent) in units {
        assert_eq!(spent, 1, "{what} spent {spent} unit(s) of the budget");
    }
    Ok(())
}

#[test]
fn a_slow_poll_is_reported_with_where_its_task_was_spawned() -> io::Result<()> {
    let tracer = Tracer::new(false, true);
    let runtime =
        Runtime::builder().trace(tracer.clone()).slow_poll_threshold(Some(Duration::from_millis(1))).build()?;
    let slow = runtime.block_on(async {
        let slow_line = line!() + 1;
        let handle = spawn(async {
            busy_for(Duration::from_millis(5));
            yield_now().await;
            busy_for(Duration::from_millis(5));
        });
        let id = handle.id();
        handle.await.expect("the slow task finished");
        (id, slow_line)
    });
    let (slow, slow_line) = slow;
    let records = tracer.records();
    let spawned_here = records.iter().any(|r| {
        r.task == slow
            && matches!(r.event, Event::Spawned(at) if at.file().ends_with("fairness.rs") && at.line() == slow_line)
    });
    assert!(spawned_here, "the trace names where the slow task was spawned");
    let slow_polls: Vec<(Duration, bool)> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::SlowPoll { took, reported } if r.task == slow => Some((took, reported)),
            _ => None,
        })
        .collect();
    assert_eq!(slow_polls.len(), 2, "both slow polls are traced: {slow_polls:?}");
    assert!(slow_polls.iter().all(|(took, _)| *took >= Duration::from_millis(5)), "{slow_polls:?}");
    let reported: Vec<bool> = slow_polls.iter().map(|(_, reported)| *reported).collect();
    assert_eq!(reported, [true, false], "stderr gets the task's first slow poll only");
    Ok(())
}

/// Computes (without touching a leaf future) for at least `at_least`.
fn busy_for(at_least: Duration) -> u64 {
    let started = std::time::Instant::now();
    let mut sum = 0u64;
    while started.elapsed() < at_least {
        sum = sum.wrapping_add(std::hint::black_box(1));
    }
    sum
}
