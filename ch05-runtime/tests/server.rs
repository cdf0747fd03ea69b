//! The async delay server answers like chapter 1's, byte for byte, and
//! behaves as a production server should.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::delay_server::{self, DelayServer};
use ch01_os_threads::{client, http};
use ch05_runtime::server::{AsyncDelayServer, Config};

mod common;
use common::wait_until;

/// Sends raw bytes and reads the whole answer (the server closes after it).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(bytes)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

#[test]
fn every_input_gets_the_same_answer_as_from_chapter_1() -> io::Result<()> {
    let ours = AsyncDelayServer::start(Config::default())?;
    let theirs = DelayServer::start(delay_server::Config::default())?;
    let huge_header = format!("GET /1/a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9 * 1024));
    let cases: [(&str, &[u8], u16); 9] = [
        ("a good request", b"GET /5/hello%20there HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        ("malformed request line", b"HELLO\r\n\r\n", 400),
        ("too many parts in the request line", b"GET /1/a HTTP/1.1 x\r\n\r\n", 400),
        ("another method", b"POST /1/a HTTP/1.1\r\n\r\n", 405),
        ("header block over 8 KiB", huge_header.as_bytes(), 431),
        ("delay not a number", b"GET /soon/a HTTP/1.1\r\n\r\n", 400),
        ("delay over 60 000 ms", b"GET /60001/a HTTP/1.1\r\n\r\n", 400),
        ("path without a message", b"GET /200 HTTP/1.1\r\n\r\n", 400),
        ("broken escape", b"GET /1/%zz HTTP/1.1\r\n\r\n", 400),
    ];
    for (what, bytes, status) in cases {
        let answer = exchange(ours.addr(), bytes)?;
        assert_eq!(http::parse_response(&answer)?.status, status, "{what}");
        assert_eq!(answer, exchange(theirs.addr(), bytes)?, "{what}: the two servers answered differently");
    }
    // And it still serves afterwards.
    let answer = client::get(ours.addr(), &http::path(0, "still here"))?;
    assert_eq!(answer.body, "still here");
    Ok(())
}

#[test]
fn a_silent_client_is_dropped_after_the_idle_limit_and_not_before() -> io::Result<()> {
    let idle_timeout = Duration::from_millis(200);
    let server = AsyncDelayServer::start(Config { idle_timeout, ..Config::default() })?;
    let connected = Instant::now();
    let mut silent = TcpStream::connect(server.addr())?;
    // A client that came later and spoke is answered, while the silent one,
    // accepted first, is still open: the server does not just close every
    // connection it accepts.
    assert_eq!(client::get(server.addr(), &http::path(0, "spoke"))?.body, "spoke");
    silent.set_nonblocking(true)?;
    let mut byte = [0u8; 1];
    let still_open = matches!(silent.read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    assert!(still_open, "the silent client was closed before its idle limit");
    silent.set_nonblocking(false)?;
    silent.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut answer = Vec::new();
    silent.read_to_end(&mut answer)?; // returns once the server closes
    // A lower bound only: a slow machine makes it later, never earlier.
    assert!(connected.elapsed() >= idle_timeout, "closed after {:?}, before the idle limit", connected.elapsed());
    assert!(answer.is_empty(), "a client that sent nothing gets no answer");
    wait_until("the connection is counted as closed", || server.open_connections() == 0);
    Ok(())
}

/// A client that sends a complete request for `path`, then keeps writing
/// bytes until the server closes the connection, `stop` is set, or it has
/// sent a gigabyte. `true` if the server cut it off (a write failed).
fn flooder(addr: SocketAddr, path: &str, stop: Arc<AtomicBool>, sent: Arc<AtomicUsize>) -> FloodHandle {
    let request = http::request(addr, path);
    thread::spawn(move || {
        let mut stream = connect_with_small_segments(addr)?;
        stream.write_all(&request)?;
        let chunk = vec![b'x'; 64 * 1024];
        while !stop.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) < 1 << 30 {
            match stream.write(&chunk) {
                Ok(n) => sent.fetch_add(n, Ordering::Relaxed),
                Err(_) => return Ok(true), // the server closed the connection
            };
        }
        Ok(false)
    })
}

type FloodHandle = thread::JoinHandle<io::Result<bool>>;

/// What happened to a victim's GET beside two flooders (one during its
/// delay, one after its immediate answer).
struct Flood {
    /// The victim's answer (its body), or why there was none.
    victim: io::Result<String>,
    /// For each flooder, whether it was still flooding when the victim's
    /// answer came.
    still_flooding: Vec<bool>,
    /// For each flooder, whether the server cut it off.
    cut_off: Vec<bool>,
}

/// `stop_after`: stop the flooders once the victim has its answer (else they
/// go on until the server cuts them off, or for a gigabyte).
fn flood_then_get(server: &AsyncDelayServer, stop_after: bool) -> io::Result<Flood> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for path in [http::path(30_000, "flood during the delay"), http::path(0, "flood after the answer")] {
        let sent = Arc::new(AtomicUsize::new(0));
        flooders.push(flooder(server.addr(), &path, Arc::clone(&stop), Arc::clone(&sent)));
        wait_until("the flooder is flooding", || sent.load(Ordering::Relaxed) > 0);
    }
    // The flooders go on until the victim has its answer, or gave up
    // waiting for it (`exchange`'s read timeout): a server that keeps its
    // thread in one flooder's poll never answers it.
    let victim = exchange(server.addr(), &http::request(server.addr(), &http::path(0, "victim")))
        .and_then(|answer| Ok(http::parse_response(&answer)?.body));
    let still_flooding = flooders.iter().map(|flooder| !flooder.is_finished()).collect();
    stop.store(stop_after, Ordering::Relaxed);
    let mut cut_off = Vec::new();
    for flooder in flooders {
        cut_off.push(flooder.join().expect("the flooder ran")?);
    }
    Ok(Flood { victim, still_flooding, cut_off })
}

#[test]
fn flooding_clients_are_cut_off_and_the_others_answered() -> io::Result<()> {
    let server = AsyncDelayServer::start(Config::default())?;
    let flood = flood_then_get(&server, false)?;
    assert_eq!(flood.victim?, "victim");
    assert_eq!(flood.cut_off, [true, true], "a client that floods is cut off, not served for as long as it sends");
    Ok(())
}

#[test]
fn flooding_clients_cannot_keep_the_servers_thread() -> io::Result<()> {
    // No byte limit: only the cooperative budget stands between the
    // flooders and the thread, and the victim must still be answered
    // while they flood.
    let server = AsyncDelayServer::start(Config { max_extra_bytes: usize::MAX, ..Config::default() })?;
    let flood = flood_then_get(&server, true)?;
    assert_eq!(flood.victim?, "victim");
    // The one flooding during its 30 s delay is still at it (the other one's
    // connection ends a second after its answer, when lingering is over).
    assert!(flood.still_flooding[0], "the victim was answered while the other client flooded");
    Ok(())
}

/// Connects with a small maximum segment size (1 000 bytes instead of
/// loopback's 64 KiB). The receiver then tells the sender about free room
/// after every few kilobytes it reads, so a sender that always has more to
/// send keeps the receiver's socket readable all the time: a flood with no
/// gaps. (With 64 KiB segments, the receiver's buffer runs dry now and then,
/// and a server that never yields would get lucky.)
fn connect_with_small_segments(addr: SocketAddr) -> io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let SocketAddr::V4(v4) = addr else { return TcpStream::connect(addr) };
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let segment: libc::c_int = 1000;
    // SAFETY: the option value is a c_int that lives for the call, with its size.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&raw const segment).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set == -1 {
        return Err(io::Error::last_os_error());
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in for the call, with its size.
    let connected =
        unsafe { libc::connect(fd, (&raw const sin).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    if connected == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(socket))
}

#[test]
fn over_the_cap_gets_503_and_a_client_leaving_frees_its_slot() -> io::Result<()> {
    let server = AsyncDelayServer::start(Config { max_connections: 1, ..Config::default() })?;
    // One client takes the only slot with a long delay...
    let mut holder = TcpStream::connect(server.addr())?;
    holder.write_all(&http::request(server.addr(), &http::path(60_000, "long")))?;
    wait_until("the holder is counted", || server.open_connections() == 1);
    // ...so the next one is refused.
    let refused = http::parse_response(&exchange(server.addr(), &http::request(server.addr(), "/0/x"))?)?;
    assert_eq!(refused.status, 503);
    assert!(refused.body.contains("cap of 1 connections"), "{}", refused.body);
    // The holder gives up during its delay: the server notices at once (it
    // waits for the delay and the client's end of file together)...
    drop(holder);
    wait_until("the abandoned slot is freed", || server.open_connections() == 0);
    // ...and the next client is served, not refused for a minute.
    assert_eq!(client::get(server.addr(), &http::path(0, "served"))?.body, "served");
    Ok(())
}

#[test]
fn shutdown_waits_for_a_request_in_flight() -> io::Result<()> {
    let server = AsyncDelayServer::start(Config::default())?;
    let addr = server.addr();
    let request = thread::spawn(move || client::get(addr, &http::path(300, "finished")));
    wait_until("the request is in flight", || server.open_connections() == 1);
    server.shutdown()?;
    assert_eq!(request.join().unwrap()?.body, "finished");
    assert!(TcpStream::connect(addr).is_err(), "after shutdown nothing listens");
    Ok(())
}

#[test]
fn a_busy_port_is_a_clear_error() -> io::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let error = AsyncDelayServer::start(Config { addr: taken.local_addr()?, ..Config::default() }).unwrap_err();
    assert!(error.to_string().starts_with("cannot listen on 127.0.0.1:"), "{error}");
    Ok(())
}
