//! The same GETs as [`client`](crate::client), as completions on our
//! [`Ring`]: one thread, no readiness, no `WouldBlock`.
//!
//! Under epoll, each request waits until its socket *can* make progress
//! and then makes the system calls itself (`connect`, `getsockopt`,
//! `write`, `read` until `WouldBlock`). Here each step of a request is an
//! operation handed to the kernel, and the loop only hears when it is done,
//! with its result:
//!
//! ```text
//!  CONNECT ──0──► SEND ──all bytes sent──► RECV ──n > 0──► RECV ──0 (end of file)──► Done
//!     │            │  └─ fewer: SEND the rest   │  └─ append, RECV again
//!     └── -errno ──┴───────── -errno ───────────┴─────────────────────────────────────► Done (error)
//! ```
//!
//! Three things change, compared with the epoll loop:
//!
//! - **Who owns the buffer.** The kernel writes into a request's receive
//!   buffer after we submitted the RECV, and reads its request bytes and
//!   the server's address whenever it gets to the SEND and the CONNECT. So
//!   those belong to the operation until its completion arrives: each
//!   request keeps them on the heap (they stay put when the request moves),
//!   and no request is dropped while an operation of it is in flight, not
//!   even when the time is up or an error cuts the batch short (`Batch`).
//! - **How many system calls.** No registration, no readiness check, no
//!   read that finds nothing: per request a `socket` and a `close`, and the
//!   operations themselves travel in `io_uring_enter` calls that carry many
//!   of them at once (batching).
//! - **How a request is stopped.** A timed-out request cannot just be
//!   dropped: its operation is cancelled (ASYNC_CANCEL), and it is freed
//!   only when the kernel confirms with the operation's completion.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use ch01_os_threads::client::connect_error;
use ch01_os_threads::http::{self, Response};

use crate::client::{socket_address, tcp_socket};
use crate::counting::Counted;
use crate::http_get::{self, Phase, Progress, Step};
use crate::uring::{KernelTimespec, Ring, Sqe, sys};

/// The `user_data` of the batch's deadline, a TIMEOUT operation. Requests
/// use their index, so this can never be one of them.
const DEADLINE: u64 = u64::MAX;

/// The `user_data` of the ASYNC_CANCELs sent when time is up. Their own
/// completions only say whether the cancel found its target.
const CANCEL: u64 = u64::MAX - 1;

/// How many bytes one RECV may bring. The delay server's answers are a few
/// hundred bytes, so usually one RECV has all of it and the next sees the
/// end. Every request waiting for its answer holds a buffer this big: the
/// kernel needs it *before* the data arrives, where the epoll client reads
/// into one buffer on its stack after readiness said data is there.
/// (Linux 5.19's buffer rings let the kernel pick a buffer from a shared
/// pool when data arrives; this chapter keeps to one buffer per request.)
const RECV_BUFFER: usize = 1024;

/// What [`get_all`] reports as it goes; the demo prints it.
#[derive(Debug)]
pub enum Seen<'a> {
    /// One `io_uring_enter`: how many new operations it handed the kernel,
    /// and how many completions were ready when it returned.
    Entered {
        /// SQEs the kernel consumed.
        submitted: u32,
        /// Completions ready to take.
        ready: u32,
    },
    /// An operation of a request completed, and this is what it did.
    Completed(&'a Step),
}

// ANCHOR: uring_get
/// One `GET` as a sequence of operations: what to submit next, and what
/// each completion means. See the module docs.
#[derive(Debug)]
pub struct UringGet {
    /// The socket, in blocking mode: io_uring never blocks a thread on it
    /// (it tries without waiting and, if the socket is not ready, waits for
    /// readiness inside the kernel). `Counted` counts its `close`.
    socket: Counted<OwnedFd>,
    /// The server, for errors.
    addr: SocketAddr,
    /// The path asked for, for errors.
    path: String,
    /// The server's address as CONNECT reads it, with its length. Boxed, so
    /// it stays at one address while the kernel may read it.
    address: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    /// The whole request; SEND reads `request[written..]` (a `Vec`'s bytes
    /// live on the heap and stay put while the `Vec` is not changed).
    request: Vec<u8>,
    /// How many request bytes the kernel has sent so far.
    written: usize,
    /// Where RECV writes: the kernel's, from the submission of a RECV until
    /// its completion.
    buffer: Box<[u8]>,
    /// The response bytes received so far.
    response: Vec<u8>,
    /// Where the exchange is: which operation comes next.
    phase: Phase,
    /// Whether an operation of this request is in flight: while it is, the
    /// kernel may use `address`, `request` or `buffer`, and this request
    /// must not be dropped.
    in_flight: bool,
}

impl UringGet {
    /// A request for `path` on a new socket; nothing is sent yet.
    pub fn new(addr: SocketAddr, path: &str) -> io::Result<UringGet> {
        let socket = Counted(tcp_socket(addr, 0).map_err(|e| connect_error(addr, e))?);
        Ok(UringGet {
            socket,
            addr,
            path: path.to_string(),
            address: Box::new(socket_address(addr)),
            request: http::request(addr, path),
            written: 0,
            buffer: vec![0; RECV_BUFFER].into_boxed_slice(),
            response: Vec::new(),
            phase: Phase::Connecting,
            in_flight: false,
        })
    }

    /// Where the exchange is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether an operation of this request is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The operation that moves the request on from where it is, carrying
    /// `token` as its `user_data`; `None` once it is done. From here until
    /// [`complete`](UringGet::complete) the request counts as in flight:
    /// the SQE points into its memory.
    pub fn next_operation(&mut self, token: u64) -> Option<Sqe> {
        let fd = self.socket.0.as_fd();
        let sqe = match self.phase {
            Phase::Connecting => {
                let (address, length) = &*self.address;
                Sqe::connect(fd, (&raw const *address).cast(), *length, token)
            }
            Phase::Sending => {
                let rest = &self.request[self.written..];
                Sqe::send(fd, rest.as_ptr(), rest.len(), token)
            }
            Phase::Receiving => Sqe::recv(fd, self.buffer.as_mut_ptr(), self.buffer.len(), token),
            Phase::Done => return None,
        };
        self.in_flight = true;
        Some(sqe)
    }

    /// The name of the operation in flight (for traces): `CONNECT`, `SEND`, `RECV`.
    pub fn operation_name(&self) -> &'static str {
        match self.phase {
            Phase::Connecting => "CONNECT",
            Phase::Sending => "SEND",
            Phase::Receiving => "RECV",
            Phase::Done => "(none)",
        }
    }

    /// Takes the result `res` of the operation in flight. Returns
    /// `finished: Some(..)` once, when the exchange ends; otherwise the
    /// request wants its [`next_operation`](UringGet::next_operation).
    pub fn complete(&mut self, res: i32) -> Progress {
        self.in_flight = false;
        let mut progress = Progress { wrote: 0, read: 0, finished: None };
        if self.phase == Phase::Done {
            return progress; // cannot happen (one operation at a time), and harmless
        }
        // `Ok(None)`: not finished, the next operation follows. An answer
        // or an error ends the exchange, and is handed out now, once.
        if let Some(result) = self.step(res, &mut progress).transpose() {
            self.phase = Phase::Done;
            progress.finished = Some(result);
        }
        progress
    }

    /// What `res` means in the current phase: the next phase, the answer
    /// (`Ok(Some)`), or an error.
    fn step(&mut self, res: i32, progress: &mut Progress) -> io::Result<Option<Response>> {
        // Interrupted before it did anything: the same operation again
        // (the phase does not change), as the epoll loop retries on EINTR.
        if res == -libc::EINTR {
            return Ok(None);
        }
        let context = |e: io::Error| http_get::request_error(self.addr, &self.path, e);
        let count = match usize::try_from(res) {
            Ok(count) => count,
            Err(_) if self.phase == Phase::Connecting => {
                return Err(connect_error(self.addr, io::Error::from_raw_os_error(-res)));
            }
            Err(_) => return Err(context(io::Error::from_raw_os_error(-res))),
        };
        match self.phase {
            // CONNECT completed with 0: the handshake is done. Nothing to
            // ask the socket (epoll's client needs getsockopt here).
            Phase::Connecting => self.phase = Phase::Sending,
            Phase::Sending if count == 0 => return Err(context(io::ErrorKind::WriteZero.into())),
            Phase::Sending => {
                // A short send is normal: the next SEND takes the rest.
                self.written += count;
                progress.wrote += count;
                if self.written == self.request.len() {
                    self.phase = Phase::Receiving;
                }
            }
            // End of file: the server closed, the answer is complete.
            Phase::Receiving if count == 0 => {
                let bytes = std::mem::take(&mut self.response);
                return http::parse_response(&bytes).map(Some).map_err(context);
            }
            Phase::Receiving => {
                // The kernel wrote `count` bytes into the buffer, and its
                // completion (which we hold) says it is done with it.
                progress.read += count;
                let received = &self.buffer[..count.min(self.buffer.len())];
                http_get::append_response(&mut self.response, received).map_err(context)?;
            }
            Phase::Done => {}
        }
        Ok(None)
    }
}
// ANCHOR_END: uring_get

/// The ring and the memory its operations point into.
///
/// The fields drop in the order they are declared: the ring first, and its
/// `Drop` waits until every operation in flight has completed; only then
/// the requests (their buffers) and the deadline's timespec. If [`get_all`]
/// returns early with an error, this order is what keeps the kernel from
/// writing into memory that has been freed.
struct Batch {
    /// The ring.
    ring: Ring,
    /// The requests, by token; `None` once finished.
    requests: Vec<Option<UringGet>>,
    /// How long the batch may take: the TIMEOUT operation reads it.
    deadline: Box<KernelTimespec>,
}

// ANCHOR: get_all
/// `GET` every path from the server at `addr`, all at once, on this thread,
/// as completions. The same contract as [`client::get_all`](crate::client::get_all):
/// one result per path, in the order of `paths`; `TimedOut` for requests
/// unfinished after `timeout`. `observe` sees every `io_uring_enter` and
/// every completion.
///
/// Fails at once if io_uring is not available here
/// ([`Unavailable::from_error`](crate::uring::Unavailable::from_error) says why).
pub fn get_all(
    addr: SocketAddr,
    paths: &[String],
    timeout: Duration,
    mut observe: impl FnMut(&Seen),
) -> io::Result<Vec<io::Result<Response>>> {
    Instant::now().checked_add(timeout).ok_or_else(|| http_get::too_long(timeout))?;
    let (sq_entries, cq_entries) = ring_sizes(paths.len());
    let mut batch = Batch {
        ring: Ring::with_cq_size(sq_entries, cq_entries)?,
        requests: Vec::with_capacity(paths.len()),
        deadline: Box::new(KernelTimespec::from_duration(timeout)),
    };
    let mut results: Vec<Option<io::Result<Response>>> = Vec::with_capacity(paths.len());
    let mut unfinished = 0;

    // Queue every CONNECT; they reach the kernel together, in the first
    // io_uring_enter (or a few, if there are more than the SQ holds).
    for (i, path) in paths.iter().enumerate() {
        match UringGet::new(addr, path) {
            Ok(mut request) => {
                if let Some(connect) = request.next_operation(i as u64) {
                    // SAFETY: CONNECT reads the request's boxed address,
                    // which lives in `batch` until the operation completes
                    // (see `Batch` for the early-return case).
                    unsafe { push(&mut batch.ring, &connect) }?;
                }
                batch.requests.push(Some(request));
                results.push(None);
                unfinished += 1;
            }
            Err(e) => {
                batch.requests.push(None);
                results.push(Some(Err(e)));
            }
        }
    }
    // The deadline is one more operation: it completes when time is up.
    let deadline = Sqe::timeout(&*batch.deadline, DEADLINE);
    // SAFETY: the timespec is boxed in `batch`, which outlives the ring's
    // operations (see `Batch`).
    unsafe { push(&mut batch.ring, &deadline) }?;
    let mut time_is_up = false;

    while unfinished > 0 && !time_is_up {
        // One system call: hand over every queued operation, and sleep
        // until at least one completion is there.
        let submitted = batch.ring.submit_and_wait(1)?;
        observe(&Seen::Entered { submitted, ready: batch.ring.ready() });
        while let Some(done) = batch.ring.completion()? {
            let i = match done.user_data {
                DEADLINE => {
                    time_is_up = true;
                    continue;
                }
                CANCEL => continue,
                token => token as usize,
            };
            let Some(request) = batch.requests.get_mut(i).and_then(Option::as_mut) else { continue };
            let operation = request.operation_name();
            let mut progress = request.complete(done.res);
            observe(&Seen::Completed(&Step::new(i, format!("{operation} {}", done.res), &progress)));
            if let Some(result) = progress.finished.take() {
                // No operation of it is in flight: its memory may go.
                batch.requests[i] = None;
                results[i] = Some(result);
                unfinished -= 1;
            } else if let Some(next) = request.next_operation(i as u64) {
                // SAFETY: as for the CONNECT: the memory SEND and RECV use
                // is the request's, kept in `batch` until this completes.
                unsafe { push(&mut batch.ring, &next) }?;
            }
        }
    }

    // Every request has finished, or time is up. What is still in flight
    // (the deadline's timer, the requests that ran out of time) is
    // cancelled, and we wait for each completion: until it arrives, the
    // kernel may still write into that request's buffer.
    if !time_is_up {
        // SAFETY: an ASYNC_CANCEL carries no address.
        unsafe { push(&mut batch.ring, &Sqe::cancel(DEADLINE, CANCEL)) }?;
    }
    for (i, request) in batch.requests.iter().enumerate() {
        if request.as_ref().is_some_and(UringGet::in_flight) {
            // SAFETY: as above.
            unsafe { push(&mut batch.ring, &Sqe::cancel(i as u64, CANCEL)) }?;
        }
    }
    while batch.ring.in_flight() > 0 || batch.ring.queued() > 0 {
        batch.ring.submit_and_wait(1)?;
        while let Some(done) = batch.ring.completion()? {
            let request = usize::try_from(done.user_data).ok().and_then(|i| batch.requests.get_mut(i));
            if let Some(Some(request)) = request {
                request.in_flight = false; // cancelled, or finished just before: either way, done
            }
        }
    }

    Ok(results
        .into_iter()
        .zip(paths)
        .map(|(result, path)| result.unwrap_or_else(|| Err(http_get::timed_out(addr, path, timeout))))
        .collect())
}
// ANCHOR_END: get_all

/// Queues `sqe`; if the SQ is full, first hands the kernel what is queued.
///
/// # Safety
///
/// As [`Ring::push`]: the memory `sqe` points into must stay valid until
/// its completion has been taken, or the ring has been dropped.
unsafe fn push(ring: &mut Ring, sqe: &Sqe) -> io::Result<()> {
    // SAFETY: the caller keeps `Ring::push`'s promise.
    if unsafe { ring.push(sqe) }.is_ok() {
        return Ok(());
    }
    ring.submit()?; // the kernel consumes every queued SQE, which frees their slots
    // SAFETY: as above.
    Ok(unsafe { ring.push(sqe) }?)
}

/// The ring for `requests` requests: the CQ holds every completion that can
/// be pending at once (one per request, plus the deadline), so it never
/// overflows in normal operation; the SQ holds what is queued between two
/// `io_uring_enter`s, and a full one is simply submitted early (`push`).
fn ring_sizes(requests: usize) -> (u32, u32) {
    let pending = (requests + 1).next_power_of_two().clamp(8, sys::MAX_CQ_ENTRIES as usize) as u32;
    let sq = pending.min(4096);
    (sq, pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

    fn addr() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    /// A request driven by hand: each step feeds the result the kernel
    /// would have put in the completion, without a kernel.
    #[test]
    fn short_sends_pieces_and_interruptions_lead_to_the_right_next_operation() -> io::Result<()> {
        let mut get = UringGet::new(addr(), "/1/hello")?;
        let request_len = get.request.len();

        let connect = get.next_operation(3).expect("starts with CONNECT");
        assert_eq!((connect.name(), connect.user_data, get.in_flight()), ("CONNECT", 3, true));
        assert_eq!(connect.addr, (&raw const get.address.0) as u64);
        // Interrupted: the same operation again.
        assert!(get.complete(-libc::EINTR).finished.is_none());
        assert_eq!(get.next_operation(3).unwrap().name(), "CONNECT");
        get.complete(0);

        let send = get.next_operation(3).unwrap();
        assert_eq!((send.name(), send.len as usize, send.addr), ("SEND", request_len, get.request.as_ptr() as u64));
        let progress = get.complete(10); // a short send...
        assert_eq!((progress.wrote, get.phase()), (10, Phase::Sending));
        let rest = get.next_operation(3).unwrap(); // ...and the rest, from where it stopped
        assert_eq!((rest.name(), rest.len as usize), ("SEND", request_len - 10));
        assert_eq!(rest.addr, get.request[10..].as_ptr() as u64);
        get.complete((request_len - 10) as i32);
        assert_eq!(get.phase(), Phase::Receiving);

        // The answer in two pieces, then the end of file.
        for piece in [&RESPONSE[..20], &RESPONSE[20..]] {
            let recv = get.next_operation(3).unwrap();
            assert_eq!((recv.name(), recv.addr, recv.len as usize), ("RECV", get.buffer.as_ptr() as u64, RECV_BUFFER));
            get.buffer[..piece.len()].copy_from_slice(piece); // what the kernel would write
            assert!(get.complete(piece.len() as i32).finished.is_none());
        }
        get.next_operation(3).unwrap();
        let done = get.complete(0).finished.expect("end of file finishes it");
        assert_eq!(done?.body, "hello");
        assert!(get.next_operation(3).is_none(), "nothing after the end");
        assert!(!get.in_flight());
        Ok(())
    }

    #[test]
    fn an_error_result_ends_the_request_with_its_errno_and_context() -> io::Result<()> {
        let mut refused = UringGet::new(addr(), "/x")?;
        refused.next_operation(0);
        let err = refused.complete(-libc::ECONNREFUSED).finished.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");

        let mut reset = UringGet::new(addr(), "/y")?;
        reset.complete(0); // connected
        reset.complete(reset.request.len() as i32); // sent
        let err = reset.complete(-libc::ECONNRESET).finished.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(err.to_string().starts_with("GET /y from 127.0.0.1:9: "), "{err}");
        Ok(())
    }

    #[test]
    fn the_cq_has_room_for_every_completion_that_can_be_pending() {
        assert_eq!(ring_sizes(10), (16, 16));
        assert_eq!(ring_sizes(1), (8, 8));
        assert_eq!(ring_sizes(10_000), (4096, 16_384));
        let (_, cq) = ring_sizes(10_000);
        assert!(cq as usize > 10_000, "one completion per request plus the deadline");
    }
}
