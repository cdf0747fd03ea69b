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
use ch04_coroutines::runtime::Executor;

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

#[test]
fn join_all_keeps_input_order_and_finishes_in_delay_order() -> io::Result<()> {
    let server = server()?;
    let http = Http { addr: server.addr() };
    let log = Log::recording();
    let mut executor = Executor::new(&log)?;
    let finished = Rc::new(RefCell::new(Vec::new()));
    let children = [("slow", 200), ("fast", 0), ("middle", 100)]
        .into_iter()
        .map(|(message, delay)| {
            let finished = Rc::clone(&finished);
            then(http.get(delay, message), move |body| {
                finished.borrow_mut().push(message);
                ready(body)
            })
        })
        .collect();
    let bodies = executor.block_on(join_all(children))?;
    let bodies: Vec<String> = bodies.into_iter().collect::<io::Result<_>>()?;
    assert_eq!(bodies, ["slow", "fast", "middle"]);
    assert_eq!(*finished.borrow(), ["fast", "middle", "slow"]);
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
