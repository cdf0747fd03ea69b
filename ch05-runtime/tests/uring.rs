//! The completion driver's leaf futures under chapter 5's executors: the
//! same GETs and the same answers as the epoll ones (bad input included),
//! owned buffers, timers, the cooperative budget, a GET dropped by a
//! timeout, and the eventfd that wakes the driver.
//!
//! Where io_uring is not available, each test prints why and passes
//! without running (`common::uring_or_skip`).

use std::future::{Future, pending, poll_fn};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::delay_server::{self, DelayServer};
use ch01_os_threads::http::{self, Response};
use ch05_runtime::server::{AsyncDelayServer, Config};
use ch05_runtime::uring::{self, net::TcpStream};
use ch05_runtime::{Runtime, channel, coop, spawn, waker};

mod common;
use common::{runtimes, uring_or_skip, wait_until};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Status, reason and body: what both clients must agree on.
fn answer(response: io::Result<Response>) -> Result<(u16, String, String), String> {
    response.map(|r| (r.status, r.reason, r.body)).map_err(|e| format!("{:?}: {e}", e.kind()))
}

/// Paths `http::get` can send that the delay server answers in each way.
fn paths() -> Vec<String> {
    vec![
        http::path(5, "hello there"),
        "/soon/a".to_string(),                  // delay not a number: 400
        "/60001/a".to_string(),                 // delay over 60 000 ms: 400
        "/200".to_string(),                     // no message: 400
        "/1/%zz".to_string(),                   // broken escape: 400
        format!("/1/{}", "a".repeat(9 * 1024)), // header block over 8 KiB: 431
        "/1/a HTTP/1.1\r\nX: y".to_string(),    // an extra header, smuggled in: still 200
    ]
}

#[test]
fn gets_on_the_completion_driver_answer_as_the_epoll_ones_on_every_runtime() -> io::Result<()> {
    if !uring_or_skip("gets vs epoll")? {
        return Ok(());
    }
    let server = DelayServer::start(delay_server::Config::default())?;
    let addr = server.addr();
    for runtime in runtimes()? {
        for path in paths() {
            let (ours, theirs) = runtime.block_on(async {
                // At the same time, as tasks: the two clients side by side.
                let path = Arc::new(path.clone());
                let ours = spawn({
                    let path = Arc::clone(&path);
                    async move { uring::http::get(addr, &path).await }
                });
                let theirs = spawn(async move { ch05_runtime::http::get(addr, &path).await });
                (ours.await, theirs.await)
            });
            let (ours, theirs) = (answer(ours.map_err(io::Error::other)?), answer(theirs.map_err(io::Error::other)?));
            assert_eq!(ours, theirs, "GET {path:.40} on {:?}", runtime.flavor());
        }
    }
    // The expected statuses, so that "both broke alike" cannot pass.
    let runtime = Runtime::new()?;
    let statuses: Vec<u16> = paths()
        .iter()
        .map(|path| runtime.block_on(uring::http::get(addr, path)).map(|r| r.status))
        .collect::<io::Result<_>>()?;
    assert_eq!(statuses, [200, 400, 400, 400, 400, 431, 200]);
    Ok(())
}

/// The epoll client's way to send any bytes: `net::TcpStream`,
/// `write_all`, `read_to_end`, parse.
async fn epoll_exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = ch05_runtime::net::TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    http::parse_response(&answer)
}

#[test]
fn the_async_server_answers_bad_input_alike_to_both_clients() -> io::Result<()> {
    if !uring_or_skip("bad input")? {
        return Ok(());
    }
    let server = AsyncDelayServer::start(Config::default())?;
    let addr = server.addr();
    let huge_header = format!("GET /1/a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9 * 1024));
    let cases: [(&[u8], u16); 5] = [
        (b"GET /5/hello%20there HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"HELLO\r\n\r\n", 400),
        (b"POST /1/a HTTP/1.1\r\n\r\n", 405),
        (huge_header.as_bytes(), 431),
        (b"GET /soon/a HTTP/1.1\r\n\r\n", 400),
    ];
    let runtime = Runtime::new()?;
    for (request, status) in cases {
        let ours = runtime.block_on(uring::http::send_raw(addr, request.to_vec()))?;
        let theirs = runtime.block_on(epoll_exchange(addr, request))?;
        assert_eq!(ours.status, status, "{:?}", String::from_utf8_lossy(&request[..request.len().min(30)]));
        assert_eq!(ours, theirs);
    }
    // And a GET, from both, to the async server.
    let path = http::path(10, "from both");
    let ours = runtime.block_on(uring::http::get(addr, &path))?;
    assert_eq!(ours, runtime.block_on(ch05_runtime::http::get(addr, &path))?);
    assert_eq!(ours.body, "from both");
    server.shutdown()
}

#[test]
fn connecting_to_a_closed_port_fails_as_the_epoll_client_does() -> io::Result<()> {
    if !uring_or_skip("closed port")? {
        return Ok(());
    }
    let addr = TcpListener::bind(loopback())?.local_addr()?; // bound, then closed
    let runtime = Runtime::new()?;
    let error = runtime.block_on(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let ours = runtime.block_on(uring::http::get(addr, "/1/x")).unwrap_err();
    let theirs = runtime.block_on(ch05_runtime::http::get(addr, "/1/x")).unwrap_err();
    assert_eq!((ours.kind(), ours.to_string()), (theirs.kind(), theirs.to_string()));
    assert!(ours.to_string().contains("no delay server at"), "{ours}");
    Ok(())
}

/// A connected pair: ours on the completion driver, and the std end.
fn pair(runtime: &Runtime) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let listener = TcpListener::bind(loopback())?;
    let ours = runtime.block_on(TcpStream::connect(listener.local_addr()?))?;
    let (theirs, _) = listener.accept()?; // the handshake is done: accept returns at once
    theirs.set_read_timeout(Some(Duration::from_secs(20)))?; // a failing test fails, not hangs
    Ok((ours, theirs))
}

#[test]
fn a_read_takes_the_buffer_and_hands_it_back_longer() -> io::Result<()> {
    if !uring_or_skip("owned buffers")? {
        return Ok(());
    }
    let runtime = Runtime::new()?;
    let (ours, mut theirs) = pair(&runtime)?;
    theirs.write_all(b"world")?;
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"hello, ");
    let (read, buf) = runtime.block_on(ours.read(buf));
    assert_eq!(read?, 5);
    assert_eq!((buf.as_slice(), buf.capacity()), (&b"hello, world"[..], 64), "appended into its spare room");

    // No spare room: refused, and the buffer comes back as it was.
    let full = vec![1u8; 8];
    let capacity = full.capacity();
    let (read, full) = runtime.block_on(ours.read(full));
    assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!((full, capacity), (vec![1u8; 8], 8));

    // Write: the bytes come back too.
    let (wrote, request) = runtime.block_on(ours.write_all(b"ping".to_vec()));
    wrote?;
    assert_eq!(request, b"ping");
    let mut got = [0u8; 4];
    theirs.read_exact(&mut got)?;
    assert_eq!(&got, b"ping");

    // The peer closes: a read completes with 0.
    drop(theirs);
    let (read, _) = runtime.block_on(ours.read(Vec::with_capacity(16)));
    assert_eq!(read?, 0);
    Ok(())
}

#[test]
fn several_mebibytes_echo_back_byte_exact() -> io::Result<()> {
    if !uring_or_skip("echo")? {
        return Ok(());
    }
    // Not a repeating pattern, so a dropped or repeated chunk cannot hide.
    let payload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let (ours, theirs) = pair(&runtime)?;
    // An echo on a plain thread.
    let echo = thread::spawn(move || -> io::Result<u64> {
        let mut theirs = theirs;
        let mut writer = theirs.try_clone()?;
        io::copy(&mut theirs, &mut writer)
    });
    let ours = Arc::new(ours);
    let sent = payload.clone();
    let received = runtime.block_on(async move {
        // Writing and reading at once, as two tasks: writing everything
        // first would fill both sockets' buffers and stall.
        let writer = {
            let ours = Arc::clone(&ours);
            spawn(async move {
                let (wrote, _) = ours.write_all(sent).await;
                wrote.and_then(|()| ours.shutdown(std::net::Shutdown::Write))
            })
        };
        let (read, received) = ours.read_to_end(Vec::new()).await;
        writer.await.map_err(io::Error::other)??;
        read.map(|_| received)
    })?;
    assert_eq!(echo.join().expect("the echo thread")?, payload.len() as u64);
    assert!(received == payload, "the echo differs from what was sent");
    Ok(())
}

#[test]
fn timers_fire_in_deadline_order_and_never_early() -> io::Result<()> {
    if !uring_or_skip("timers")? {
        return Ok(());
    }
    let runtime = Runtime::new()?;
    let order = runtime.block_on(async {
        let (tx, mut rx) = channel::channel();
        let started = Instant::now();
        for (name, ms) in [("third", 60), ("first", 0), ("fourth", 80), ("second", 20)] {
            let tx = tx.clone();
            let nap = uring::time::sleep(Duration::from_millis(ms)); // the deadline counts from here
            spawn(async move {
                nap.await.expect("the timer");
                let _ = tx.send((name, started.elapsed(), ms));
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some((name, slept, ms)) = rx.recv().await {
            assert!(slept >= Duration::from_millis(ms), "{name} woke after {slept:?}, before its {ms} ms");
            order.push(name);
        }
        order
    });
    assert_eq!(order, ["first", "second", "third", "fourth"]);
    Ok(())
}

#[test]
fn a_timeout_ends_a_future_that_never_finishes_and_lets_one_that_does() -> io::Result<()> {
    if !uring_or_skip("timeout")? {
        return Ok(());
    }
    let runtime = Runtime::new()?;
    let limit = Duration::from_millis(20);
    let started = Instant::now();
    let error = runtime.block_on(uring::time::timeout(limit, pending::<()>())).unwrap_err();
    assert!(started.elapsed() >= limit);
    assert_eq!((error.kind(), error.to_string()), (io::ErrorKind::TimedOut, "did not finish within 20 ms".into()));
    let won = runtime.block_on(uring::time::timeout(Duration::from_secs(60), async { 7 }))?;
    assert_eq!(won, 7, "the timer lost the race, and was dropped (cancelled) with the Timeout");
    Ok(())
}

#[test]
fn a_sleep_too_long_for_an_instant_waits_instead_of_failing() -> io::Result<()> {
    if !uring_or_skip("very long sleep")? {
        return Ok(());
    }
    let runtime = Runtime::new()?;
    // Its TIMEOUT gets the longest timespec there is; the kernel must
    // accept it and wait, so the short timeout wins the race.
    let raced = runtime.block_on(uring::time::timeout(Duration::from_millis(10), uring::time::sleep(Duration::MAX)));
    assert_eq!(raced.as_ref().map_err(io::Error::kind).err(), Some(io::ErrorKind::TimedOut), "{raced:?}");
    Ok(())
}

/// A server that accepts and never answers.
fn silent_server() -> io::Result<TcpListener> {
    TcpListener::bind(loopback())
}

#[test]
fn a_get_dropped_by_timeout_closes_its_socket_once_the_kernel_lets_go() -> io::Result<()> {
    if !uring_or_skip("dropped GET")? {
        return Ok(());
    }
    let listener = silent_server()?;
    let addr = listener.local_addr()?;
    for runtime in runtimes()? {
        // The epoll runtime's own `timeout` drops our GET: the two drivers
        // meet only through the waker, and a drop.
        let limit = Duration::from_millis(20);
        let raced = runtime.block_on(ch05_runtime::time::timeout(limit, uring::http::get(addr, "/1/never")));
        assert!(raced.is_err(), "the silent server cannot have answered");
        // The GET's RECV was in flight: its buffer and its socket went to
        // the driver, the kernel cancelled the RECV, and only then was the
        // socket closed. The server sees the request, then the end of file.
        let (mut accepted, _) = listener.accept()?;
        accepted.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut seen = Vec::new();
        accepted.read_to_end(&mut seen)?;
        assert!(seen.starts_with(b"GET /1/never HTTP/1.1\r\n"), "{:?}", String::from_utf8_lossy(&seen));
    }
    Ok(())
}

/// The units of the task's budget each poll of `future` spent, and its output.
async fn units_per_poll<F: Future>(future: F) -> (Vec<u32>, F::Output) {
    let mut future = pin!(future);
    let mut spent = Vec::new();
    let output = poll_fn(|cx| {
        let before = coop::budget_remaining().expect("a task's poll has a budget");
        let polled = future.as_mut().poll(cx);
        spent.push(before - coop::budget_remaining().expect("the same poll"));
        polled
    })
    .await;
    (spent, output)
}

#[test]
fn every_completion_leaf_future_spends_one_unit_when_ready_and_none_while_waiting() -> io::Result<()> {
    if !uring_or_skip("budget")? {
        return Ok(());
    }
    let runtime = Runtime::new()?;
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let peer = thread::spawn(move || -> io::Result<()> {
        let (mut theirs, _) = listener.accept()?;
        let mut got = [0u8; 1];
        theirs.read_exact(&mut got)?;
        theirs.write_all(b"pong") // only after our write: our read waits for it
    });
    let spent = runtime.block_on(runtime.spawn(async move {
        let mut spent = Vec::new();
        let (units, stream) = units_per_poll(TcpStream::connect(addr)).await;
        spent.push(("connect", units));
        let stream = stream?;
        // The read first, so that it waits: the peer answers only our write.
        let mut reading = pin!(units_per_poll(stream.read(Vec::with_capacity(8))));
        poll_fn(|cx| {
            assert!(reading.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let (units, (wrote, _)) = units_per_poll(stream.write(b"x".to_vec())).await;
        wrote?;
        spent.push(("write", units));
        let (units, (read, _)) = reading.await;
        read?;
        spent.push(("read", units));
        spent.push(("sleep", units_per_poll(uring::time::sleep(Duration::from_millis(5))).await.0));
        spent.push(("sleep that is due", units_per_poll(uring::time::sleep(Duration::ZERO)).await.0));
        Ok::<_, io::Error>(spent)
    }))??;
    peer.join().expect("the peer thread")?;
    for (what, units) in spent {
        let (ready, waiting) = units.split_last().expect("polled at least once");
        assert_eq!(*ready, 1, "{what}: the poll that returned Ready spent {ready} unit(s): {units:?}");
        assert!(waiting.iter().all(|&u| u == 0), "{what}: a Pending poll kept a unit: {units:?}");
        if what == "read" || what == "sleep" {
            assert!(!waiting.is_empty(), "{what}: it had to wait for its completion at least once");
        }
    }
    Ok(())
}

#[test]
fn a_completion_waits_for_the_next_poll_when_the_budget_is_spent() -> io::Result<()> {
    if !uring_or_skip("budget spent")? {
        return Ok(());
    }
    let runtime = Runtime::builder().coop_budget(Some(1)).build()?; // one unit per poll
    let (ours, mut theirs) = pair(&runtime)?;
    let (polls, (read, buf)) = runtime
        .block_on(runtime.spawn(async move {
            let mut read = pin!(ours.read(Vec::with_capacity(8)));
            let mut polls = 0;
            let output = poll_fn(|cx| {
                polls += 1;
                match polls {
                    1 => {
                        // Submitted, and nothing to receive yet: it waits.
                        assert!(read.as_mut().poll(cx).is_pending());
                        theirs.write_all(b"abc").expect("the peer writes"); // now the RECV can complete
                        Poll::Pending
                    }
                    2 => {
                        // Woken by the driver: the completion is in. Spend the
                        // poll's one unit first; the read must not take it anyway.
                        let Poll::Ready(unit) = coop::poll_proceed(cx) else { panic!("a new poll has its unit") };
                        unit.spend();
                        assert!(read.as_mut().poll(cx).is_pending(), "Ready without a unit of budget");
                        Poll::Pending // the read woke the task: it runs again
                    }
                    _ => read.as_mut().poll(cx),
                }
            })
            .await;
            (polls, output)
        }))
        .map_err(io::Error::other)?;
    // Poll 1 submitted the RECV; poll 2 found no budget; poll 3 took the result.
    assert_eq!((polls, read?, buf.as_slice()), (3, 3, &b"abc"[..]));
    Ok(())
}

#[test]
fn our_futures_need_no_particular_executor() -> io::Result<()> {
    if !uring_or_skip("loose coupling")? {
        return Ok(());
    }
    let server = DelayServer::start(delay_server::Config::default())?;
    // The 15-line `block_on` of waker.rs: a hand-written waker, no runtime.
    let body = waker::block_on(async {
        uring::time::sleep(Duration::from_millis(5)).await?;
        uring::http::get(server.addr(), &http::path(5, "no runtime needed")).await?.into_ok_body()
    })?;
    assert_eq!(body, "no runtime needed");
    Ok(())
}

/// The thread id of the thread named `name` in this process.
fn thread_named(name: &str) -> Option<libc::pid_t> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| task.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// Whether thread `tid` is asleep in `io_uring_enter` right now: the
/// syscall's number is the first field of `/proc/self/task/<tid>/syscall`
/// only while the thread is blocked in it.
fn asleep_in_io_uring_enter(tid: libc::pid_t) -> bool {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    text.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok()) == Some(libc::SYS_io_uring_enter)
}

#[test]
fn a_submission_wakes_the_driver_asleep_in_io_uring_enter() -> io::Result<()> {
    if !uring_or_skip("wake the driver")? {
        return Ok(());
    }
    let driver = thread_named("uring").expect("the driver thread runs");
    let runtime = Runtime::new()?;
    for _ in 0..3 {
        // Only the eventfd READ is in flight: nothing else will end the wait.
        wait_until("the driver sleeps in io_uring_enter", || asleep_in_io_uring_enter(driver));
        // The epoll runtime's timer bounds the test: a lost wake-up fails
        // it in 10 s instead of hanging.
        let slept = runtime.block_on(ch05_runtime::time::timeout(
            Duration::from_secs(10),
            uring::time::sleep(Duration::from_millis(1)),
        ));
        assert!(matches!(slept, Ok(Ok(()))), "the TIMEOUT was never submitted: {slept:?}");
    }
    Ok(())
}
