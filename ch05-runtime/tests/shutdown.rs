//! Dropping a runtime drops its tasks, and with them every socket and timer
//! they held: the reactor's tables are empty again.
//!
//! Alone in its test binary: the reactor is one per process, and its counts
//! would include other tests' sockets if they ran at the same time.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use ch05_runtime::net::{TcpListener, TcpStream};
use ch05_runtime::reactor::{pending_timers, registered_sources};
use ch05_runtime::time::sleep;
use ch05_runtime::{IoDriver, Runtime, spawn};

/// Counts its drops.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_runtime_deregisters_every_source_and_timer() -> io::Result<()> {
    let kinds = [
        Runtime::builder(),
        Runtime::builder().io_driver(IoDriver::ExecutorThread),
        Runtime::builder().worker_threads(2),
    ];
    for (kind, kind_name) in kinds.into_iter().zip(["reactor thread", "own reactor", "two workers"]) {
        let runtime = kind.build()?;
        let drops = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        const CLIENTS: usize = 5;
        // A task that accepts and then reads forever; clients that wait for
        // an answer that never comes; sleepers that would sleep an hour.
        let accepted = Arc::new(AtomicUsize::new(0));
        let (guard, counted) = (DropCounter(Arc::clone(&drops)), Arc::clone(&accepted));
        runtime.spawn(async move {
            let _guard = guard;
            let mut open = Vec::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                open.push(stream);
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        for _ in 0..CLIENTS {
            let (guard, started) = (DropCounter(Arc::clone(&drops)), Arc::clone(&started));
            runtime.spawn(async move {
                let _guard = guard;
                let mut stream = TcpStream::connect(addr).await.unwrap();
                started.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1];
                let _ = stream.read(&mut buf).await;
                unreachable!("nobody writes to this socket");
            });
            let guard = DropCounter(Arc::clone(&drops));
            runtime.spawn(async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            });
        }
        // Wait (by causality) until every client connected and was accepted.
        runtime.block_on(async {
            poll_fn(|cx| {
                if started.load(Ordering::SeqCst) == CLIENTS && accepted.load(Ordering::SeqCst) == CLIENTS {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            // One more round, so the sleepers surely reached their timers.
            spawn(async {}).await.unwrap();
        });
        // The listener (bound outside any runtime: the process's reactor),
        // the clients' sockets and the accepted ones (in the reactor the
        // runtime uses), and the timers.
        let own = runtime.registered_sources() != registered_sources();
        let (in_runtime, in_process) = if own { (2 * CLIENTS, 1) } else { (1 + 2 * CLIENTS, 1 + 2 * CLIENTS) };
        assert_eq!((runtime.registered_sources(), registered_sources()), (in_runtime, in_process));
        assert_eq!(runtime.pending_timers(), CLIENTS);
        assert_eq!(runtime.unfinished_tasks(), 1 + 2 * CLIENTS);

        drop(runtime);
        assert_eq!(drops.load(Ordering::SeqCst), 1 + 2 * CLIENTS, "every task's future was dropped ({kind_name})");
        // The process's reactor is empty again. (A runtime's own reactor is
        // gone with the runtime: the sockets in it were dropped with their
        // tasks, through the same `Drop` that deregisters them.)
        assert_eq!(registered_sources(), 0, "every socket deregistered");
        assert_eq!(pending_timers(), 0, "every timer left the table");
    }
    Ok(())
}
