//! The showdown's one workload: N GETs to the delay server, all in flight at
//! once, each answered after the same delay, done by every approach of the
//! book and by the peers. Each function sends the N requests, waits for all
//! of them, and counts the good answers (`200 OK`, the body asked for); the
//! first failure is kept for the table's notes.
//!
//! The runtimes do the same work: each task builds its request (chapter 1's
//! `http::request`) and bounds its wait with chapter 1's two default
//! [`Timeouts`] (the connect, then the whole answer), as chapter 5's
//! `http::get` does, each written the way that runtime's users write a
//! timeout. Chapters 1 to 4 are the floor the book builds: chapter 1's
//! threads get the same limits (a connect timeout, a read timeout on the
//! socket); chapters 2 to 4 have no timers: chapter 2's fibers and chapter
//! 3's loop keep one deadline for the whole run ([`RUN_TIMEOUT`]), and
//! chapter 4's executor gives up when a wait brings no event for too long.
//!
//! Each run happens in a fresh process (`bench-run`, see `main.rs`), so its
//! time, CPU and memory are its own.

use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ch01_os_threads::bench_kit::Outcome;
use ch01_os_threads::client::Timeouts;
use ch01_os_threads::http::{self, Response};

use crate::micro::{CH05, CH05_MULTI, CH05_OWN, SMOL_LOCAL, TOKIO, TOKIO_MULTI};

/// How long any one run may take before its unfinished requests count as
/// failed: far above the delay, so only a stuck approach ever meets it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Stack of each thread (chapter 1) and each fiber (chapter 2): the request
/// code needs a few KiB; 64 KiB is what both chapters use.
pub const STACK: usize = 64 * 1024;

/// Chapter 1's approach, as the tables name it.
pub const THREADS: &str = "ch01 thread per request";
/// Chapter 2's.
pub const FIBERS: &str = "ch02 green threads (non-blocking + yield)";
/// Chapter 3's.
pub const EPOLL: &str = "ch03 one epoll loop";
/// Chapter 4's.
pub const COROUTINES: &str = "ch04 hand-written coroutines";
/// Chapter 3's completion loop: the same requests as io_uring operations.
pub const URING: &str = "ch03 one io_uring loop";
/// Chapter 5's runtime with its io_uring completion driver.
pub const CH05_URING: &str = "ch05 runtime, 1 thread, io_uring driver";

/// The approaches, in the order the table lists them: (id on the command
/// line, name in the table).
pub const APPROACHES: [(&str, &str); 12] = [
    ("threads", THREADS),
    ("fibers", FIBERS),
    ("epoll", EPOLL),
    ("uring", URING),
    ("coroutines", COROUTINES),
    ("ch05-1", CH05),
    ("ch05-own", CH05_OWN),
    ("ch05-2", CH05_MULTI),
    ("ch05-uring", CH05_URING),
    ("tokio-1", TOKIO),
    ("tokio-2", TOKIO_MULTI),
    ("smol", SMOL_LOCAL),
];

/// Sends the `n` GETs of `path` to `addr` the way `approach` does, and
/// reports how many were answered well.
pub fn run(approach: &str, addr: SocketAddr, path: &str, n: usize) -> io::Result<Outcome> {
    let results: Vec<io::Result<Response>> = match approach {
        "threads" => thread_per_request(addr, path, n),
        "fibers" => green_threads(addr, path, n)?,
        "epoll" => ch03_epoll::client::get_all(addr, &vec![path.to_string(); n], RUN_TIMEOUT, |_| {})?,
        "uring" => ch03_epoll::uring_client::get_all(addr, &vec![path.to_string(); n], RUN_TIMEOUT, |_| {})?,
        "ch05-uring" => {
            // Started before the work, like the reactor thread the other
            // ch05 rows start with their runtime: the ring's memory is the
            // driver's, not the requests'.
            ch05_runtime::uring::start()?;
            ch05_runtime::uring::http::get_many(&crate::micro::ch05_runtime(CH05)?, addr, path, n)
        }
        "coroutines" => coroutines(addr, path, n)?,
        "ch05-1" => ch05(crate::micro::ch05_runtime(CH05)?, addr, path, n),
        "ch05-own" => ch05(crate::micro::ch05_runtime(CH05_OWN)?, addr, path, n),
        "ch05-2" => ch05(crate::micro::ch05_runtime(CH05_MULTI)?, addr, path, n),
        "tokio-1" => tokio_gets(crate::micro::tokio_runtime(TOKIO)?, addr, path, n),
        "tokio-2" => tokio_gets(crate::micro::tokio_runtime(TOKIO_MULTI)?, addr, path, n),
        "smol" => smol_gets(addr, path, n),
        other => return Err(io::Error::new(ErrorKind::InvalidInput, format!("unknown approach {other:?}"))),
    };
    let want = path.rsplit('/').next().unwrap_or_default();
    let mut outcome = Outcome::default();
    for result in results {
        match result.and_then(Response::into_ok_body) {
            Ok(body) if body == want => outcome.answered += 1,
            Ok(body) => outcome.first_error = outcome.first_error.or(Some(format!("got {body:?}, not {want:?}"))),
            Err(e) => outcome.first_error = outcome.first_error.or(Some(e.to_string())),
        }
    }
    Ok(outcome)
}

/// Chapter 1: one OS thread per request, each blocked in chapter 1's client.
/// If the OS refuses a thread, the requests without one fail with its reason.
fn thread_per_request(addr: SocketAddr, path: &str, n: usize) -> Vec<io::Result<Response>> {
    let mut threads = Vec::with_capacity(n);
    let mut refused = None;
    for i in 0..n {
        let path = path.to_string();
        match std::thread::Builder::new().stack_size(STACK).spawn(move || ch01_os_threads::client::get(addr, &path)) {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                refused = Some(format!("only {i} of {n} threads could be started: {e}"));
                break;
            }
        }
    }
    let mut results: Vec<io::Result<Response>> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or_else(|_| Err(io::Error::other("a request thread panicked"))))
        .collect();
    if let Some(why) = refused {
        results.resize_with(n, || Err(io::Error::other(why.clone())));
    }
    results
}

/// Chapter 2: one fiber per request on non-blocking sockets. A fiber that
/// would block yields instead and tries again on its next turn: nothing
/// tells it *when* its socket is ready (that is the reactor's job, which
/// chapter 2 does not have), so every fiber polls its socket once per lap of
/// the ring. The waits overlap, but the CPU never rests.
fn green_threads(addr: SocketAddr, path: &str, n: usize) -> io::Result<Vec<io::Result<Response>>> {
    use ch02_green_threads::{Config, run, spawn};
    let deadline = Instant::now() + RUN_TIMEOUT;
    run(Config::default(), || {
        let fibers: Vec<_> = (0..n)
            .map(|_| {
                let path = path.to_string();
                spawn(move || fiber_get(addr, &path, deadline))
            })
            .collect::<io::Result<_>>()?;
        Ok(fibers.into_iter().map(|fiber| fiber.join().map_err(io::Error::other).and_then(|r| r)).collect())
    })?
}

/// One GET inside a fiber: yields whenever the socket would block.
fn fiber_get(addr: SocketAddr, path: &str, deadline: Instant) -> io::Result<Response> {
    let mut stream = ch03_epoll::client::connect_nonblocking(addr)?;
    let request = http::request(addr, path);
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        // While the handshake runs, a write fails with WouldBlock, like a
        // write to a full buffer: either way, another turn.
        let step = if sent < request.len() {
            stream.write(&request[sent..]).map(|written| sent += written)
        } else {
            match stream.read(&mut buffer) {
                Ok(0) => return http::parse_response(&answer),
                Ok(read) => {
                    answer.extend_from_slice(&buffer[..read]);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match step {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                if Instant::now() > deadline {
                    return Err(io::Error::new(ErrorKind::TimedOut, format!("GET {path}: no answer in time")));
                }
                ch02_green_threads::yield_now();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Chapter 4: a `then` coroutine around chapter 4's `HttpGetFuture` per
/// request, on chapter 4's executor.
fn coroutines(addr: SocketAddr, path: &str, n: usize) -> io::Result<Vec<io::Result<Response>>> {
    use ch04_coroutines::combinators::then;
    use ch04_coroutines::future::{Future, ready};
    use ch04_coroutines::http::HttpGetFuture;
    use ch04_coroutines::log::Log;
    use ch04_coroutines::runtime::Executor;
    type Slot = Rc<Cell<Option<io::Result<String>>>>;
    let slots: Vec<Slot> = (0..n).map(|_| Rc::default()).collect();
    let tasks: Vec<Box<dyn Future<Output = ()>>> = slots
        .iter()
        .map(|slot| {
            let slot = Rc::clone(slot);
            let task = then(HttpGetFuture::new(addr, path), move |body: io::Result<String>| {
                slot.set(Some(body));
                ready(())
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    Executor::new(&Log::silent())?.run(tasks)?;
    // Chapter 4's future hands out the body of a 200 answer (an error for
    // any other status), so a good body stands for a `200 OK` response.
    Ok(slots
        .into_iter()
        .map(|slot| {
            let body = slot.take().unwrap_or_else(|| Err(io::Error::other("the coroutine never finished")))?;
            Ok(Response { status: 200, reason: "OK".into(), body })
        })
        .collect())
}

/// Chapter 5: a task per request on our runtime, each running `http::get`:
/// the request built in the task, a connect timeout and a read timeout
/// (chapter 1's [`Timeouts`]).
fn ch05(runtime: ch05_runtime::Runtime, addr: SocketAddr, path: &str, n: usize) -> Vec<io::Result<Response>> {
    let path: Arc<str> = Arc::from(path);
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let path = Arc::clone(&path);
                ch05_runtime::spawn(async move { ch05_runtime::http::get(addr, &path).await })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| Err(io::Error::other(e.to_string()))));
        }
        results
    })
}

// ANCHOR: tokio_get
/// tokio: a task per request doing what `ch05_runtime::http::get` does, as
/// a tokio user writes it: the request built in the task, `connect` under
/// `tokio::time::timeout(limits.connect, ..)`, `write_all`, then
/// `read_to_end` under `timeout(limits.read, ..)`.
async fn tokio_get(addr: SocketAddr, path: &str, limits: Timeouts) -> io::Result<Response> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;
    let mut stream = timeout(limits.connect, tokio::net::TcpStream::connect(addr)).await??;
    stream.write_all(&http::request(addr, path)).await?;
    let mut answer = Vec::new();
    timeout(limits.read, stream.read_to_end(&mut answer)).await??;
    http::parse_response(&answer)
}
// ANCHOR_END: tokio_get

/// tokio: a task per request running [`tokio_get`].
fn tokio_gets(runtime: tokio::runtime::Runtime, addr: SocketAddr, path: &str, n: usize) -> Vec<io::Result<Response>> {
    let path: Arc<str> = Arc::from(path);
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let path = Arc::clone(&path);
                tokio::spawn(async move { tokio_get(addr, &path, Timeouts::default()).await })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| Err(io::Error::other(e.to_string()))));
        }
        results
    })
}

// ANCHOR: smol_get
/// smol: the same exchange on async-io's `Async<TcpStream>`, each wait
/// raced against an async-io `Timer` (what smol's users write for a
/// timeout: `future.or(timer)`).
async fn smol_get(addr: SocketAddr, path: &str, limits: Timeouts) -> io::Result<Response> {
    use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
    let mut stream = async_io::Async::<TcpStream>::connect(addr).or(too_late(limits.connect)).await?;
    stream.write_all(&http::request(addr, path)).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).or(too_late(limits.read)).await?;
    http::parse_response(&answer)
}

/// An error after `limit`: the other side of a race with a timer.
async fn too_late<T>(limit: Duration) -> io::Result<T> {
    async_io::Timer::after(limit).await;
    Err(io::Error::new(ErrorKind::TimedOut, format!("no answer within {limit:?}")))
}
// ANCHOR_END: smol_get

/// smol's pieces: a task per request running [`smol_get`] on
/// async-executor's `LocalExecutor` (so the path is shared through an `Rc`),
/// run by `async_io::block_on` (`smol::block_on`) on this thread.
fn smol_gets(addr: SocketAddr, path: &str, n: usize) -> Vec<io::Result<Response>> {
    let path: Rc<str> = Rc::from(path);
    let executor = async_executor::LocalExecutor::new();
    let work = async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let path = Rc::clone(&path);
                executor.spawn(async move { smol_get(addr, &path, Timeouts::default()).await })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await);
        }
        results
    };
    async_io::block_on(executor.run(work))
}
