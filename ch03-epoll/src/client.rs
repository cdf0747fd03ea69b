//! Many HTTP GETs at once on one thread, driven by our [`Poll`].
//!
//! The event loop in [`get_all`] is the heart of the chapter:
//!
//! 1. start every connect without waiting, and register each socket once
//!    with its index as the [`Token`];
//! 2. sleep in [`Poll::poll`] until some sockets are ready;
//! 3. for each event, let that request's [`HttpGet`] make all the progress it
//!    can; when one finishes, take its answer and forget its socket;
//! 4. repeat until every request has finished or the time is up.
//!
//! No request waits for another: answers are handled in the order the server
//! sends them, not the order they were asked for.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ch01_os_threads::client::connect_error;
use ch01_os_threads::http::Response;
use ch01_os_threads::syscall;

use crate::counting::{self, Counted, Syscall};
use crate::http_get::{self, HttpGet, Step, StepOutcome};
use crate::poll::{Events, Interest, Poll, Token};

/// What every socket is registered for, once: readable and writable,
/// edge-triggered, and told when the peer stops sending. The first writable
/// edge says "connected", readable edges say "data arrived".
pub const INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE).add(Interest::EDGE).add(Interest::RDHUP);

// ANCHOR: get_all
/// `GET` every path from the server at `addr`, all at once, on this thread.
///
/// Returns one result per path, in the order of `paths`. `observe` sees each
/// event as it is handled (the demo prints them). The outer error is for the
/// event queue itself failing; a request that fails (refused, server closed
/// early, bad response) gets its own `Err`, and requests still unfinished
/// after `timeout` get `TimedOut`.
pub fn get_all(
    addr: SocketAddr,
    paths: &[String],
    timeout: Duration,
    mut observe: impl FnMut(&Step),
) -> io::Result<Vec<io::Result<Response>>> {
    // A timeout too large to add to the clock is a caller's mistake, not a panic.
    let deadline = Instant::now().checked_add(timeout).ok_or_else(|| http_get::too_long(timeout))?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    // The token of request `i` is `Token(i)`; its slot becomes `None` when it
    // finishes, so a late event for it finds nothing to do.
    // Each stream is wrapped in `Counted`, which counts its system calls for
    // the comparison with io_uring (see `counting`); it changes nothing else.
    let mut requests: Vec<Option<HttpGet<Counted<TcpStream>>>> = Vec::with_capacity(paths.len());
    let mut results: Vec<Option<io::Result<Response>>> = Vec::with_capacity(paths.len());
    let mut unfinished = 0;

    for (i, path) in paths.iter().enumerate() {
        // Registered once, for everything this request will wait for (INTEREST).
        let started = connect_nonblocking(addr)
            .map_err(|e| connect_error(addr, e))
            .and_then(|stream| poll.registry().register(&stream, Token(i), INTEREST).map(|()| stream));
        match started {
            Ok(stream) => {
                requests.push(Some(HttpGet::new(Counted(stream), addr, path)));
                results.push(None);
                unfinished += 1;
            }
            Err(e) => {
                requests.push(None);
                results.push(Some(Err(e)));
            }
        }
    }

    while unfinished > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        poll.poll(&mut events, Some(deadline - now))?;
        for event in events.iter() {
            let Token(i) = event.token();
            let flags = event.flags().names();
            let Some(request) = requests.get_mut(i).and_then(Option::as_mut) else {
                // Finished already (or not ours): a late event. Ignoring it is
                // what stops one end of file from being counted twice.
                observe(&Step { token: i, event: flags, wrote: 0, read: 0, outcome: StepOutcome::Stale });
                continue;
            };
            let mut progress = request.advance();
            observe(&Step::new(i, flags, &progress));
            if let Some(result) = progress.finished.take() {
                // Deregister before the socket closes (dropping the request
                // closes it), then free the slot: this request is over.
                poll.registry().deregister(request.stream())?;
                requests[i] = None;
                results[i] = Some(result);
                unfinished -= 1;
            }
        }
    }

    // Whatever is left ran out of time.
    Ok(results
        .into_iter()
        .zip(paths)
        .map(|(result, path)| result.unwrap_or_else(|| Err(http_get::timed_out(addr, path, timeout))))
        .collect())
}
// ANCHOR_END: get_all

// ANCHOR: connect
/// Starts a TCP connect to `addr` without waiting for it to finish.
///
/// std's `TcpStream::connect` blocks until the handshake is done, so we make
/// the socket ourselves: `SOCK_NONBLOCK` makes `connect` return at once with
/// `EINPROGRESS`, and the socket becomes writable when the handshake ends
/// (successfully or not; [`HttpGet`] checks which).
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = tcp_socket(addr, libc::SOCK_NONBLOCK)?;
    let (address, length) = socket_address(addr);
    counting::count(Syscall::Connect);
    // SAFETY: `address` is a valid socket address of `length` bytes, and the
    // kernel only reads it during the call.
    let result = unsafe { connect_raw(&socket, (&raw const address).cast(), length) };
    match result {
        // Connected at once (possible on loopback) or in progress: either way
        // the first writable event tells the state machine to go on.
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from(socket))
}

/// A new TCP socket for talking to `addr` (IPv4 or IPv6), closed when
/// exec'ing another program (`SOCK_CLOEXEC`), with `flags` added (e.g.
/// `SOCK_NONBLOCK`).
pub fn tcp_socket(addr: SocketAddr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    counting::count(Syscall::Socket);
    // SAFETY: socket takes no pointers; on success it returns a new fd.
    let fd = syscall!(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags, 0) })?;
    // SAFETY: `fd` is a fresh socket nobody else owns; from here on OwnedFd
    // closes it, also on the error paths of the callers.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `addr` in the kernel's format, `sockaddr_in` or `sockaddr_in6` inside a
/// `sockaddr_storage` (big enough for either), with its length.
pub fn socket_address(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain bytes; all zeros is a valid (empty) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match addr {
        SocketAddr::V4(v4) => {
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(), // network byte order (big-endian)
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned
            // for any socket address, so the write stays inside `storage`.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(address) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let address = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for a sockaddr_in6.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(address) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

/// `connect(2)` on `socket`.
///
/// # Safety
///
/// `address` must point to a valid socket address of `length` bytes, readable
/// for the duration of the call.
unsafe fn connect_raw(socket: &OwnedFd, address: *const libc::sockaddr, length: libc::socklen_t) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller guarantees `address` and `length`; the fd is open.
    syscall!(unsafe { libc::connect(socket.as_raw_fd(), address, length) })?;
    Ok(())
}
// ANCHOR_END: connect
