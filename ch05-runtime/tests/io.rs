//! Leaf futures on real sockets and timers: TCP, sleep, timeout,
//! spawn_blocking, and the loose coupling of reactor and executor.

use std::future::{Future, poll_fn};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch05_runtime::channel::channel;
use ch05_runtime::net::{TcpListener, TcpStream};
use ch05_runtime::time::{sleep, sleep_until, timeout};
use ch05_runtime::{Runtime, http, spawn, spawn_blocking};

mod common;
use common::runtimes;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Echoes everything it reads, until end of file.
async fn echo_once(mut listener: TcpListener) -> io::Result<usize> {
    let (mut stream, _) = listener.accept().await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n;
    }
}

/// Sends `payload` and reads the echo at the same time, in one future:
/// writing everything first would fill both socket buffers and stall.
async fn send_and_receive(stream: &mut TcpStream, payload: &[u8]) -> io::Result<Vec<u8>> {
    let (mut sent, mut received, mut eof_sent) = (0, Vec::with_capacity(payload.len()), false);
    let mut buf = vec![0u8; 32 * 1024];
    poll_fn(|cx| {
        loop {
            let mut progress = false;
            if sent < payload.len()
                && let Poll::Ready(n) = stream.poll_write(cx, &payload[sent..])?
            {
                sent += n;
                progress = true;
            }
            if sent == payload.len() && !eof_sent {
                stream.shutdown(Shutdown::Write)?;
                eof_sent = true;
            }
            match stream.poll_read(cx, &mut buf)? {
                Poll::Ready(0) => return Poll::Ready(Ok(std::mem::take(&mut received))),
                Poll::Ready(n) => {
                    received.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending; // both directions left their wakers with the reactor
            }
        }
    })
    .await
}

#[test]
fn tcp_echo_of_several_mebibytes_is_byte_exact() -> io::Result<()> {
    // Not a repeating pattern, so a dropped or repeated chunk cannot hide.
    let payload: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let payload = Arc::new(payload);
    for runtime in runtimes()? {
        let listener = TcpListener::bind(loopback())?;
        let addr = listener.local_addr()?;
        let sent = Arc::clone(&payload);
        let (echoed, received) = runtime.block_on(async move {
            let server = spawn(echo_once(listener));
            let mut client = TcpStream::connect(addr).await?;
            let received = send_and_receive(&mut client, &sent).await?;
            Ok::<_, io::Error>((server.await??, received))
        })?;
        assert_eq!(echoed, payload.len());
        assert!(received == *payload, "the echo differs from what was sent");
    }
    Ok(())
}

#[test]
fn connecting_to_a_closed_port_is_an_error() -> io::Result<()> {
    let addr = std::net::TcpListener::bind(loopback())?.local_addr()?; // bound, then closed
    let runtime = Runtime::new()?;
    let error = runtime.block_on(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let error = runtime.block_on(http::get(addr, "/1/x")).unwrap_err();
    assert!(error.to_string().contains("no delay server at"), "{error}");
    Ok(())
}

#[test]
fn timers_fire_in_deadline_order() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let order = runtime.block_on(async {
        // Deadlines from one instant, so their order is exact by construction.
        let base = Instant::now();
        let (tx, mut rx) = channel();
        for (name, ms) in [("third", 30), ("first", 0), ("fourth", 40), ("second", 10)] {
            let tx = tx.clone();
            spawn(async move {
                sleep_until(base + Duration::from_millis(ms)).await;
                tx.send(name).unwrap();
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(name) = rx.recv().await {
            order.push(name);
        }
        order
    });
    assert_eq!(order, ["first", "second", "third", "fourth"]);
    Ok(())
}

/// Pending forever; counts its drops.
struct Forever(Arc<AtomicUsize>);

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn timeout_cancels_by_dropping_the_future() -> io::Result<()> {
    for runtime in runtimes()? {
        let drops = Arc::new(AtomicUsize::new(0));
        let (expired, dropped_when_returned) = runtime.block_on(async {
            let result = timeout(Duration::from_millis(20), Forever(Arc::clone(&drops))).await;
            (result, drops.load(Ordering::SeqCst))
        });
        let elapsed = expired.unwrap_err();
        assert_eq!(elapsed.to_string(), "did not finish within 20 ms");
        assert_eq!(dropped_when_returned, 1, "the future was dropped by the time timeout returned");
        let quick = runtime.block_on(timeout(Duration::from_secs(60), async { 5 }));
        assert_eq!(quick, Ok(5));
        // A GET that outlives its time limit: the socket goes with the
        // future. The "server" here accepts and never answers; it sees the
        // client's end of file once the dropped future has closed its socket.
        let silent = std::net::TcpListener::bind(loopback())?;
        let addr = silent.local_addr()?;
        let slow = runtime.block_on(timeout(Duration::from_millis(20), http::get(addr, "/5000/slow")));
        assert!(slow.is_err(), "the GET ran out of time");
        let (mut accepted, _) = silent.accept()?; // the handshake was done by the kernel
        accepted.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut request = Vec::new();
        // Ends at the client's end of file, or fails after 20 s if the socket stayed open.
        accepted
            .read_to_end(&mut request)
            .map_err(|e| io::Error::new(e.kind(), format!("the timed-out GET's socket was not closed: {e}")))?;
        assert!(request.starts_with(b"GET /5000/slow"), "the request was sent before the time ran out");
    }
    Ok(())
}

#[test]
fn a_very_long_sleep_is_pending_not_a_panic() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let result = runtime.block_on(timeout(Duration::from_millis(5), sleep(Duration::MAX)));
    assert!(result.is_err());
    Ok(())
}

#[test]
fn spawn_blocking_reads_a_regular_file_and_reports_panics() -> io::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let expected = std::fs::read(path)?;
    for runtime in runtimes()? {
        let (bytes, thread_name, panicked) = runtime.block_on(async move {
            let read = spawn_blocking(move || (std::fs::read(path), thread::current().name().map(str::to_string)));
            let (bytes, name) = read.await.unwrap();
            let panicked = spawn_blocking(|| -> u8 { panic!("deliberate panic in a blocking job") }).await;
            (bytes, name, panicked)
        });
        assert_eq!(bytes?, expected);
        assert!(thread_name.unwrap_or_default().starts_with("blocking-"));
        assert!(panicked.unwrap_err().is_panic());
    }
    Ok(())
}

#[test]
fn a_blocking_job_aborted_before_it_starts_never_runs() -> io::Result<()> {
    let runtime = Runtime::builder().max_blocking_threads(1).build()?;
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::clone(&ran);
    let (first, second) = runtime.block_on(async move {
        // The one pool thread is busy until released...
        let first = spawn_blocking(move || release_rx.recv().is_ok());
        // ...so this job waits in the queue, and is aborted there.
        let second = spawn_blocking(move || ran2.fetch_add(1, Ordering::SeqCst));
        second.abort();
        release_tx.send(()).unwrap();
        (first.await, second.await)
    });
    assert!(first.unwrap(), "the first job ran");
    assert!(second.unwrap_err().is_aborted());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    Ok(())
}

/// A future written with `std` alone (no ch05 import): a timer on a thread
/// of its own, which calls the waker it was given.
struct ThreadTimer {
    state: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl ThreadTimer {
    fn new(after: Duration) -> ThreadTimer {
        let state = Arc::new(Mutex::new((false, None::<Waker>)));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            thread::sleep(after);
            let mut state = shared.lock().unwrap();
            state.0 = true;
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
        });
        ThreadTimer { state }
    }
}

impl Future for ThreadTimer {
    type Output = &'static str;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        let mut state = self.state.lock().unwrap();
        if state.0 {
            return Poll::Ready("a std-only future ran on our executor");
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn reactor_and_executor_meet_only_through_the_waker() -> io::Result<()> {
    let server = DelayServer::start(Config::default())?;
    let addr = server.addr();
    let get = move |message: &'static str| async move {
        http::get(addr, &ch01_os_threads::http::path(5, message)).await.and_then(|r| r.into_ok_body())
    };
    // The same leaf futures (socket + timer) under three executors.
    assert_eq!(ch05_runtime::waker::block_on(get("smallest"))?, "smallest");
    ch05_runtime::waker::block_on(sleep(Duration::from_millis(1)));
    for runtime in runtimes()? {
        let body = runtime.block_on(async move { spawn(get("spawned")).await.unwrap() })?;
        assert_eq!(body, "spawned");
        // And a future that knows nothing of this crate runs on ours.
        let std_only = runtime.block_on(async { spawn(ThreadTimer::new(Duration::from_millis(1))).await.unwrap() });
        assert_eq!(std_only, "a std-only future ran on our executor");
    }
    Ok(())
}
