//! The futures against real sockets on 127.0.0.1: the embedded delay server,
//! and tiny misbehaving servers written here.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch01_os_threads::http;
use ch04_coroutines::callbacks::run_callbacks;
use ch04_coroutines::combinators::{join_all, then};
use ch04_coroutines::coroutine::{FetchThree, run_async_fn, run_state_machine};
use ch04_coroutines::future::{Future, PollState, ready};
use ch04_coroutines::http::{Fetch, Http, HttpGetFuture};
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::{self, Executor};
use ch04_coroutines::testing::{Probe, Tracked};

fn server() -> io::Result<DelayServer> {
    DelayServer::start(Config::default())
}

#[test]
fn the_three_styles_print_identical_lines() -> io::Result<()> {
    let server = server()?;
    let http = Http { addr: server.addr() };
    let log = Log::recording();
    let quiet = Log::recording();
    let by_callbacks = run_callbacks(http.addr, log.named("callbacks"))?;
    let (by_hand, _) = run_state_machine(http, &quiet, log.named("hand-written"))?;
    let (by_compiler, _) = run_async_fn(http, &quiet, log.named("async fn"))?;
    assert_eq!((by_callbacks, by_hand, by_compiler), (15, 15, 15));
    let callbacks = log.texts_of("callbacks");
    assert_eq!(callbacks.len(), 4);
    assert_eq!(callbacks[3], "third answer \"three\"; done: 15 bytes in 3 answers");
    assert_eq!(callbacks, log.texts_of("hand-written"));
    assert_eq!(callbacks, log.texts_of("async fn"));
    Ok(())
}

#[test]
fn the_executor_polls_only_after_events() -> io::Result<()> {
    let server = server()?;
    let http = Http { addr: server.addr() };

    // One task awaiting three GETs in a row.
    let (_, stats) = run_state_machine(http, &Log::recording(), Log::recording())?;
    assert!(stats.waits >= 3, "each of the three GETs needed a wait: {stats:?}");
    assert!(stats.polls <= 1 + stats.events, "busy loop? {stats:?}");

    // Five tasks at once, each one GET.
    let log = Log::recording();
    let mut executor = Executor::new(&log)?;
    let tasks: Vec<Box<dyn Future<Output = ()>>> = [40, 0, 30, 10, 20]
        .into_iter()
        .map(|delay| {
            let task = then(http.get(delay, "x"), |body: io::Result<String>| {
                assert_eq!(body.expect("the GET works"), "x");
                ready(())
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    executor.run(tasks)?;
    let stats = executor.stats();
    assert!(stats.polls >= 5 && stats.polls <= 5 + stats.events, "busy loop? {stats:?}");
    // Every wait ended with at least one event (no timeouts, no spinning).
    assert!(stats.events >= stats.waits);
    Ok(())
}

#[test]
fn fifty_tasks_of_two_gets_each_all_finish_no_event_lost() -> io::Result<()> {
    // Many sockets at once, answers that arrive together (one wait, many
    // events), and second GETs registered inside polls that an event caused:
    // every event must reach its task. A lost one would end in the executor's
    // wait timeout (short here) instead of a hang.
    const TASKS: usize = 50;
    let server = server()?;
    let http = Http { addr: server.addr() };
    let mut executor = Executor::new(&Log::recording())?.with_wait_timeout(Duration::from_secs(20));
    let finished = Rc::new(Cell::new(0));
    let tasks: Vec<Box<dyn Future<Output = ()>>> = (0..TASKS)
        .map(|i| {
            let finished = Rc::clone(&finished);
            let task = then(http.get((i % 5) as u64, &format!("{i}")), move |first: io::Result<String>| {
                let first = first.expect("the first GET works");
                then(http.get(0, &format!("{first}-again")), move |second: io::Result<String>| {
                    assert_eq!(second.expect("the second GET works"), format!("{i}-again"));
                    finished.set(finished.get() + 1);
                    ready(())
                })
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    executor.run(tasks)?;
    assert_eq!(finished.get(), TASKS);
    let stats = executor.stats();
    assert!(stats.polls <= TASKS as u64 + stats.events, "busy loop? {stats:?}");
    Ok(())
}

/// A server for `order.len()` connections that answers them in `order`
/// (by message), one at a time: it writes one answer, then waits for that
/// client to close before it writes the next. So the order in which the
/// client finishes is decided by cause, not by delays and a clock.
fn answering_in_order(order: &'static [&'static str]) -> io::Result<(SocketAddr, thread::JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handle = thread::spawn(move || {
        let mut waiting = Vec::new();
        for _ in order {
            let (mut stream, _) = listener.accept()?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while http::find_head_end(&head).is_none() && stream.read(&mut byte)? == 1 {
                head.push(byte[0]);
            }
            // "GET /<delay>/<message> HTTP/1.1": the message is the path's last segment.
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
            let message = line.split(' ').nth(1).and_then(|path| path.rsplit('/').next()).unwrap_or_default();
            waiting.push((message.to_string(), stream));
        }
        for &message in order {
            let index = waiting.iter().position(|(m, _)| m == message).ok_or_else(|| io::Error::other(message))?;
            let (_, mut stream) = waiting.remove(index);
            let body = message.as_bytes();
            stream.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes())?;
            stream.write_all(body)?;
            stream.shutdown(std::net::Shutdown::Write)?;
            // The client closes once it has the whole answer: only then the next one.
            while stream.read(&mut [0u8; 64])? > 0 {}
        }
        Ok(())
    });
    Ok((addr, handle))
}

#[test]
fn join_all_keeps_input_order_and_finishes_in_answer_order() -> io::Result<()> {
    let (addr, server) = answering_in_order(&["fast", "middle", "slow"])?;
    let http = Http { addr };
    let mut executor = Executor::new(&Log::recording())?;
    let finished = Rc::new(RefCell::new(Vec::new()));
    let children = ["slow", "fast", "middle"]
        .into_iter()
        .map(|message| {
            let finished = Rc::clone(&finished);
            then(http.get(0, message), move |body| {
                finished.borrow_mut().push(message);
                ready(body)
            })
        })
        .collect();
    let bodies = executor.block_on(join_all(children))?;
    let bodies: Vec<String> = bodies.into_iter().collect::<io::Result<_>>()?;
    assert_eq!(bodies, ["slow", "fast", "middle"], "input order");
    assert_eq!(*finished.borrow(), ["fast", "middle", "slow"], "the order the answers came in");
    server.join().expect("server thread")?;
    Ok(())
}

/// A task that starts a GET, polls it until it waits, then gives up on it:
/// the GET is dropped before it was ever `Ready` (cancelled).
struct StartThenCancel {
    /// The GET, counted by a probe; `None` once cancelled.
    get: Option<Tracked<HttpGetFuture>>,
    /// Sockets registered with the executor: while the GET waits, after it is dropped.
    registered: Rc<RefCell<Vec<usize>>>,
}

impl Future for StartThenCancel {
    type Output = io::Result<()>;

    fn poll(&mut self) -> PollState<io::Result<()>> {
        let Some(mut get) = self.get.take() else { return PollState::Ready(Err(io::Error::other("polled twice"))) };
        if !matches!(get.poll(), PollState::NotReady) {
            return PollState::Ready(Err(io::Error::other("a minute-long GET was ready at once")));
        }
        let mut registered = self.registered.borrow_mut();
        registered.extend(runtime::registered());
        drop(get); // cancel: dropped while pending
        registered.extend(runtime::registered());
        PollState::Ready(Ok(()))
    }
}

#[test]
fn a_get_dropped_before_ready_deregisters_its_socket() -> io::Result<()> {
    let server = server()?;
    let probe = Probe::new();
    let registered = Rc::new(RefCell::new(Vec::new()));
    let get = Tracked::new("minute-long GET", HttpGetFuture::new(server.addr(), &http::path(60_000, "x")), &probe);
    let task = StartThenCancel { get: Some(get), registered: Rc::clone(&registered) };
    let mut executor = Executor::new(&Log::recording())?;
    executor.block_on(task)??;
    assert_eq!(*registered.borrow(), [1, 0], "registered while waiting, deregistered by the drop");
    assert_eq!((probe.polls(), probe.drops()), (1, 1), "polled once, dropped once");
    assert!(probe.completed().is_empty(), "dropped before Ready: cancelled, not finished");
    assert_eq!(executor.stats().waits, 0, "nothing left to wait for");
    // The dropped GET closed its socket: the server's handler sees the
    // client leave and frees the slot (bounded wait, far below the minute).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.open_connections() > 0 {
        assert!(std::time::Instant::now() < deadline, "the cancelled GET's connection is still open");
        thread::yield_now();
    }
    Ok(())
}

/// Wraps a leaf, records its state after every poll, and counts polls that
/// come after `Ready` (there must be none).
struct Watch {
    get: HttpGetFuture,
    states: Rc<RefCell<Vec<&'static str>>>,
    finished: bool,
    polls_after_ready: Rc<RefCell<usize>>,
}

impl Future for Watch {
    type Output = ();

    fn poll(&mut self) -> PollState<()> {
        if self.finished {
            *self.polls_after_ready.borrow_mut() += 1;
            return PollState::Ready(());
        }
        let state = self.get.poll();
        self.states.borrow_mut().push(self.get.state_name());
        match state {
            PollState::Ready(body) => {
                assert_eq!(body.expect("the GET works"), "hi");
                self.finished = true;
                PollState::Ready(())
            }
            PollState::NotReady => PollState::NotReady,
        }
    }
}

#[test]
fn the_leaf_goes_not_started_pending_resolved_and_is_never_polled_after_ready() -> io::Result<()> {
    let server = server()?;
    let mut executor = Executor::new(&Log::recording())?;
    let polls_after_ready = Rc::new(RefCell::new(0));
    let mut all_states = Vec::new();
    let mut tasks: Vec<Box<dyn Future<Output = ()>>> = Vec::new();
    for delay in [30, 0, 10] {
        let get = HttpGetFuture::new(server.addr(), &http::path(delay, "hi"));
        assert_eq!(get.state_name(), "NotStarted");
        let states = Rc::new(RefCell::new(Vec::new()));
        all_states.push(Rc::clone(&states));
        tasks.push(Box::new(Watch { get, states, finished: false, polls_after_ready: Rc::clone(&polls_after_ready) }));
    }
    executor.run(tasks)?;
    assert_eq!(*polls_after_ready.borrow(), 0);
    for states in all_states {
        let states = states.borrow();
        let (last, before) = states.split_last().expect("polled at least once");
        assert_eq!(*last, "Resolved");
        assert!(!before.is_empty() && before.iter().all(|state| *state == "Pending"), "{states:?}");
    }
    Ok(())
}

#[test]
fn connection_refused_is_ready_err() -> io::Result<()> {
    // Bind to learn a free port, then close it: nobody listens there.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut executor = Executor::new(&Log::recording())?;
    let result = executor.block_on(HttpGetFuture::new(addr, "/0/x"))?;
    assert_eq!(result.expect_err("nobody listens").kind(), io::ErrorKind::ConnectionRefused);
    // The whole coroutine fails the same way, without a panic or a hang.
    let result = executor.block_on(FetchThree::new(Http { addr }, Log::recording()))?;
    assert_eq!(result.expect_err("nobody listens").kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

/// A one-shot server: reads one request head, writes `answer`, closes.
fn misbehaving_server(answer: &'static [u8]) -> io::Result<(SocketAddr, thread::JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while http::find_head_end(&head).is_none() && stream.read(&mut byte)? == 1 {
            head.push(byte[0]);
        }
        stream.write_all(answer)?;
        Ok(()) // dropping the stream closes the connection
    });
    Ok((addr, handle))
}

#[test]
fn a_server_closing_early_is_ready_err() -> io::Result<()> {
    let mut executor = Executor::new(&Log::recording())?;
    for answer in [&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"[..], b"HTTP/1.1 200 OK\r\n", b""] {
        let (addr, server) = misbehaving_server(answer)?;
        let result = executor.block_on(HttpGetFuture::new(addr, "/0/hello"))?;
        assert_eq!(result.expect_err("cut short").kind(), io::ErrorKind::InvalidData, "answer {answer:?}");
        server.join().expect("server thread")?;
    }
    Ok(())
}

#[test]
fn a_non_200_answer_is_ready_err() -> io::Result<()> {
    let server = server()?;
    let mut executor = Executor::new(&Log::recording())?;
    let result = executor.block_on(HttpGetFuture::new(server.addr(), "/not-a-number/x"))?;
    assert!(result.expect_err("400").to_string().contains("400"));
    Ok(())
}
