//! The check of exercise 1.1: are the requests really in flight together?
//!
//! Timing the whole run would say so only roughly, and differently on every
//! machine. Instead, the check talks to a *rendezvous* server: it answers no
//! request until all of them have arrived. Requests sent one after another
//! never get there (the first waits for an answer that waits for the
//! second), and the server says how many it saw at once. It then answers in
//! the reverse order of arrival, so the bodies come back in the wrong order
//! unless `fetch_all` puts them in the order of the requests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ch01_exercises::fetch_all::fetch_all;
use ch01_os_threads::delay_server::{Config, DelayServer};
use ch01_os_threads::http;
use exercise_harness::{Verdict, ensure};

/// The requests: `(delay_ms, message)`. The rendezvous server ignores the
/// delays; the real delay server honours them.
const REQUESTS: &[(u64, &str)] = &[(40, "one"), (10, "two"), (30, "three"), (20, "four")];

/// How long the rendezvous server waits for the next request before it
/// concludes that the requests do not come together. Threads that were all
/// started connect within milliseconds; this only bounds a wrong solution.
const PATIENCE: Duration = Duration::from_secs(10);

pub fn check() -> Verdict {
    let server = DelayServer::start(Config::default()).map_err(|e| format!("could not start a delay server: {e}"))?;
    let none = fetch_all(server.addr(), &[]).map_err(|e| format!("fetch_all with no requests failed: {e}"))?;
    ensure!(none.is_empty(), "fetch_all with no requests returned {none:?}; expected an empty list");

    // All at once, and in order.
    let rendezvous = Rendezvous::start().map_err(|e| format!("could not start the rendezvous server: {e}"))?;
    let addr = rendezvous.addr;
    let fetching = thread::spawn(move || fetch_all(addr, REQUESTS));
    let together = rendezvous.gather(REQUESTS.len()).map_err(|e| format!("the rendezvous server failed: {e}"))?;
    ensure!(
        together == REQUESTS.len(),
        "only {together} of the {} requests reached the server at the same time (it waited {} s for the next one): \
         the requests ran one after another. Start every thread first, and only then wait for the answers.",
        REQUESTS.len(),
        PATIENCE.as_secs()
    );
    let bodies = fetching
        .join()
        .map_err(|_| "fetch_all panicked".to_string())?
        .map_err(|e| format!("fetch_all failed although every request was answered 200 OK: {e}"))?;
    let expected: Vec<&str> = REQUESTS.iter().map(|&(_, message)| message).collect();
    ensure!(
        bodies == expected,
        "fetch_all returned {bodies:?}; expected {expected:?}. The server answered in the opposite order of arrival: \
         the bodies must follow the order of the requests, not the order the answers came in."
    );

    // A request the server refuses is an error, not a body.
    let refused = fetch_all(server.addr(), &[(10, "fine"), (99_999, "too-long")]);
    ensure!(
        refused.is_err(),
        "fetch_all returned {refused:?} although the server answered the second request (a delay of 99 999 ms) \
         with 400 Bad Request: an answer that is not 200 OK is an error (Response::into_ok_body)"
    );

    // And the real delay server, with its delays.
    let bodies =
        fetch_all(server.addr(), REQUESTS).map_err(|e| format!("fetch_all from the delay server failed: {e}"))?;
    ensure!(bodies == expected, "from the delay server, fetch_all returned {bodies:?}; expected {expected:?}");
    Ok(())
}

/// A server that holds every request until enough have arrived.
struct Rendezvous {
    /// Where it listens (127.0.0.1, a port the OS chose).
    addr: SocketAddr,
    /// The connections the accept thread took, in order of arrival.
    arrivals: mpsc::Receiver<TcpStream>,
    /// Set when the check is over; the accept thread then ends.
    stop: Arc<AtomicBool>,
    /// The accept thread.
    accept: Option<JoinHandle<()>>,
}

impl Rendezvous {
    fn start() -> io::Result<Rendezvous> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (arrived, arrivals) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) || stream.map(|s| arrived.send(s)).is_err() {
                    return; // dropping the listener refuses whoever still waits
                }
            }
        });
        Ok(Rendezvous { addr, arrivals, stop, accept: Some(accept) })
    }

    /// Reads requests until `expected` are in, or until none arrives for
    /// [`PATIENCE`]; answers all it holds (in reverse order of arrival) and
    /// returns how many were there at once.
    fn gather(&self, expected: usize) -> io::Result<usize> {
        let mut held = Vec::new();
        while held.len() < expected {
            let Ok(stream) = self.arrivals.recv_timeout(PATIENCE) else { break };
            let message = read_message(&stream)?;
            held.push((stream, message));
        }
        let together = held.len();
        for (stream, message) in held.into_iter().rev() {
            // Too few came together: refuse, so the waiting client returns.
            let reply = if together == expected {
                http::reply(200, "OK", &message)
            } else {
                http::reply(503, "Unavailable", "")
            };
            // A client that gave up is not the check's problem: ignore errors.
            let mut stream = &stream;
            let _ = stream.write_all(&reply.bytes).and_then(|()| stream.shutdown(Shutdown::Write));
        }
        Ok(together)
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        // The accept thread sleeps in `accept`: wake it with one last client.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Reads one request head from `stream` and returns its message.
fn read_message(mut stream: &TcpStream) -> io::Result<String> {
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while http::find_head_end(&head).is_none() {
        match stream.read(&mut chunk)? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a client closed before its request")),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    http::parse_request(&head)
        .map(|request| request.message)
        .map_err(|reply| io::Error::other(format!("a request the delay server would answer {}", reply.status)))
}
