//! Part 9 of the demo: completion I/O under the same executor.
//!
//! The same GETs as part 1, on the io_uring driver instead of the epoll
//! reactor, with the driver's system calls counted; a read that takes a
//! buffer and hands it back; and a read dropped while the kernel has it,
//! whose buffer the driver keeps until the kernel's completion says it has
//! let go. Where io_uring is not available, one line says why and the
//! part is skipped.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ch01_os_threads::http::path;
use ch01_os_threads::say;
use ch01_os_threads::trace::section;
use ch05_runtime::trace::Tracer;
use ch05_runtime::uring::{self, Unavailable, net::TcpStream};
use ch05_runtime::{spawn, time};

use crate::{FIVE, builder, me};

/// The buffer each read of this part hands to the kernel.
const BUFFER: usize = 4096;
/// How long the silent read may wait before its timeout drops it.
const LIMIT: Duration = Duration::from_millis(20);

// ANCHOR: part
/// Part 9.
pub fn part(addr: SocketAddr, tracer: &Option<Tracer>) -> anyhow::Result<()> {
    section(9, "completion I/O: the same GETs on an io_uring driver, under the same executor");
    if let Err(e) = uring::start() {
        let why = Unavailable::from_error(&e).ok_or(e).context("starting the io_uring driver")?;
        say!("uring", "io_uring is not available here ({why}): skipping part 9");
        return Ok(());
    }
    say!("main", "the completion driver: {}", uring::describe().unwrap_or_default());
    let runtime = builder(tracer).build()?;

    // The GETs of part 1, each a task, each `uring::http::get`.
    let (before, started) = (uring::stats(), Instant::now());
    let bodies = runtime.block_on(async move {
        let handles: Vec<_> = FIVE
            .iter()
            .map(|&(delay, message)| spawn(async move { uring::http::get(addr, &path(delay, message)).await }))
            .collect();
        let mut bodies = Vec::new();
        for handle in handles {
            bodies.push(handle.await??.into_ok_body()?);
        }
        Ok::<_, anyhow::Error>(bodies)
    })?;
    let made = uring::stats() - before;
    say!("main", "got {bodies:?} in {} ms: the same executor, another driver", started.elapsed().as_millis());
    say!(
        "main",
        "the driver took {} operations (CONNECT, SEND, RECV, and a TIMEOUT per time limit) in {} io_uring_enter \
         calls, woken {} times through its eventfd; {} of the TIMEOUTs were dropped in flight when their GET \
         finished first, each with an ASYNC_CANCEL to follow",
        made.operations,
        made.enters,
        made.wakeups,
        made.abandoned
    );

    owned_buffer(&runtime)?;
    dropped_in_flight(&runtime)
}
// ANCHOR_END: part

// ANCHOR: owned_buffer
/// A read takes its buffer and hands it back: the kernel had it meanwhile.
fn owned_buffer(runtime: &ch05_runtime::Runtime) -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let peer = listener.local_addr()?;
    runtime.block_on(async move {
        let stream = TcpStream::connect(peer).await?;
        let (mut theirs, _) = listener.accept()?; // the handshake is done: at once
        std::io::Write::write_all(&mut theirs, b"hello")?;
        let buffer = Vec::with_capacity(BUFFER);
        let lent = buffer.as_ptr();
        let (read, buffer) = stream.read(buffer).await; // `buffer` is gone until the RECV completes
        let n = read?;
        let same = if buffer.as_ptr() == lent { "the same allocation" } else { "another allocation?" };
        say!(
            me(),
            "read(a Vec of capacity {BUFFER}) -> Ok({n}), and the Vec back ({same}): {:?}",
            String::from_utf8_lossy(&buffer)
        );
        Ok(())
    })
}
// ANCHOR_END: owned_buffer

// ANCHOR: dropped_in_flight
/// A read on a connection that never answers, raced with a timeout: the
/// timeout drops it while the kernel has its RECV. The driver keeps the
/// buffer (and the socket) until the RECV's completion arrives.
fn dropped_in_flight(runtime: &ch05_runtime::Runtime) -> anyhow::Result<()> {
    let silent = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?; // never accepts, never sends
    let peer = silent.local_addr()?;
    runtime.block_on(async move {
        let stream = TcpStream::connect(peer).await?;
        let before = uring::stats();
        say!(me(), "a read of a connection that never answers, raced with a {} ms timeout:", LIMIT.as_millis());
        uring::log_events(true);
        let raced = time::timeout(LIMIT, stream.read(Vec::with_capacity(BUFFER))).await;
        let abandoned = (uring::stats() - before).abandoned;
        say!(
            me(),
            "timeout -> {}: the read future is dropped, its RECV is not; {abandoned} operation(s) handed their \
             {BUFFER}-byte buffer to the driver, which asks for an ASYNC_CANCEL",
            raced.map_or_else(|elapsed| format!("Err({elapsed})"), |_| "Ok?".to_string())
        );
        // Not a wait for the kernel (nothing here can wait for it): a look
        // at the driver's table every millisecond, for at most a second.
        let mut looks = 0;
        while uring::stats().parked > 0 && looks < 1000 {
            time::sleep(Duration::from_millis(1)).await;
            looks += 1;
        }
        uring::log_events(false);
        say!(
            me(),
            "operations the driver still holds memory for: {}. The buffer was freed when the RECV's completion \
             came, not when its future was dropped",
            uring::stats().parked
        );
        Ok(())
    })
}
// ANCHOR_END: dropped_in_flight
