//! The delay server and the blocking client, over real sockets on 127.0.0.1.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::client;
use ch01_os_threads::delay_server::{Config, DelayServer, ShutdownReport};
use ch01_os_threads::http::{self, Response};

fn start(config: Config) -> io::Result<DelayServer> {
    DelayServer::start(config)
}

/// Sends raw bytes, reads until the server closes, parses the answer.
fn raw_request(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(bytes)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    http::parse_response(&answer)
}

/// Waits (bounded by 10 s, without sleeping) until the server has `n` open
/// connections. The bound only matters when a test fails: then it fails
/// instead of hanging.
fn wait_for_open_connections(server: &DelayServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != n {
        assert!(Instant::now() < deadline, "the server never had {n} open connection(s)");
        thread::yield_now();
    }
}

#[test]
fn answers_a_good_request() -> io::Result<()> {
    let server = start(Config::default())?;
    let answer = client::get(server.addr(), &http::path(20, "hello"))?;
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello"));
    let answer = client::get(server.addr(), &http::path(0, "spaces and 100%"))?;
    assert_eq!(answer.body, "spaces and 100%");
    Ok(())
}

#[test]
fn every_bad_input_gets_its_status_and_the_server_carries_on() -> io::Result<()> {
    let server = start(Config::default())?;
    let huge_header = format!("GET /1/a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9 * 1024));
    let cases: [(&str, &[u8], u16); 11] = [
        ("malformed request line", b"HELLO\r\n\r\n", 400),
        ("whitespace before a header's colon", b"GET /1/a HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("a header line without a colon", b"GET /1/a HTTP/1.1\r\nHost x\r\n\r\n", 400),
        ("obsolete line folding", b"GET /1/a HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
        ("a delay with a sign", b"GET /+100/a HTTP/1.1\r\n\r\n", 400),
        ("too many parts in the request line", b"GET /1/a HTTP/1.1 x\r\n\r\n", 400),
        ("another method", b"POST /1/a HTTP/1.1\r\n\r\n", 405),
        ("header block over 8 KiB", huge_header.as_bytes(), 431),
        ("delay not a number", b"GET /soon/a HTTP/1.1\r\n\r\n", 400),
        ("delay over 60 000 ms", b"GET /60001/a HTTP/1.1\r\n\r\n", 400),
        ("path without a message", b"GET /200 HTTP/1.1\r\n\r\n", 400),
    ];
    for (what, bytes, status) in cases {
        let answer = raw_request(server.addr(), bytes)?;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert!(!answer.body.is_empty(), "{what}: the error should say why");
        // ... and the server still serves a good request afterwards.
        assert_eq!(client::get(server.addr(), &http::path(0, "still here"))?.body, "still here", "after {what}");
    }
    let answer = raw_request(server.addr(), b"DELETE /1/a HTTP/1.1\r\n\r\n")?;
    assert!(answer.body.contains("use GET"), "{answer:?}");
    Ok(())
}

#[test]
fn a_silent_client_is_dropped_after_the_idle_limit() -> io::Result<()> {
    let server = start(Config { idle_timeout: Duration::from_millis(100), ..Config::default() })?;
    let mut silent = TcpStream::connect(server.addr())?;
    // Our own timeout is far longer than the server's idle limit: if the
    // server never drops us, the test fails instead of hanging.
    silent.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf)?, 0, "the server should close an idle connection");
    wait_for_open_connections(&server, 0);
    assert_eq!(client::get(server.addr(), &http::path(0, "ok"))?.body, "ok");
    Ok(())
}

#[test]
fn connections_over_the_cap_get_503() -> io::Result<()> {
    let server = start(Config { max_connections: 1, shutdown_grace: Duration::ZERO, ..Config::default() })?;
    // The first connection takes the only slot and holds it (a long delay).
    let mut holder = TcpStream::connect(server.addr())?;
    holder.set_read_timeout(Some(Duration::from_secs(20)))?;
    holder.write_all(&http::request(server.addr(), &http::path(60_000, "slow")))?;
    wait_for_open_connections(&server, 1);

    let refused = raw_request(server.addr(), &http::request(server.addr(), &http::path(0, "x")))?;
    assert_eq!(refused.status, 503);
    assert!(refused.body.contains("cap of 1"), "{refused:?}");

    // Shutting down with no grace cuts the holder short: it gets 503 too.
    assert_eq!(server.shutdown()?, ShutdownReport { in_flight: 1, cut_short: 1 });
    let mut answer = Vec::new();
    holder.read_to_end(&mut answer)?;
    assert_eq!(http::parse_response(&answer)?.status, 503);
    Ok(())
}

#[test]
fn a_short_request_is_answered_while_a_long_one_waits() -> io::Result<()> {
    // Ordered by cause, not by clock: the long request is in the server
    // (its connection open) before the short one starts, and is still
    // unanswered after the short one got its answer. Only a server that
    // waits for each connection on its own thread can do that.
    let server = start(Config { shutdown_grace: Duration::ZERO, ..Config::default() })?;
    let addr = server.addr();
    let (done, long_answer) = mpsc::channel();
    let long = thread::spawn(move || {
        let _ = done.send(client::get(addr, &http::path(60_000, "long")).map(|answer| answer.status));
    });
    wait_for_open_connections(&server, 1);
    assert_eq!(client::get(addr, &http::path(0, "short"))?.body, "short");
    assert!(long_answer.try_recv().is_err(), "the long request must still be waiting");
    // Shutting down without grace ends the long one (503) instead of a minute's wait.
    drop(server);
    long.join().expect("client thread");
    assert_eq!(long_answer.recv().map_err(io::Error::other)??, 503);
    Ok(())
}

#[test]
fn a_client_that_leaves_during_its_delay_frees_its_slot_at_once() -> io::Result<()> {
    // Two slots, both taken by requests that would wait a minute; both
    // clients give up and close. Their slots must come back now, not in a
    // minute: a third client then gets 200, not 503.
    let server = start(Config { max_connections: 2, ..Config::default() })?;
    let mut leavers = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr())?;
        stream.write_all(&http::request(server.addr(), &http::path(60_000, "never read")))?;
        leavers.push(stream);
    }
    wait_for_open_connections(&server, 2);
    let refused = raw_request(server.addr(), &http::request(server.addr(), &http::path(0, "x")))?;
    assert_eq!(refused.status, 503, "both slots are taken: {refused:?}");

    drop(leavers); // the clients close their sockets during the delay
    wait_for_open_connections(&server, 0); // bounded at 10 s, far below the 60 s delay
    let answer = client::get(server.addr(), &http::path(0, "my turn"))?;
    assert_eq!((answer.status, answer.body.as_str()), (200, "my turn"));
    Ok(())
}

#[test]
fn bytes_after_the_head_do_not_end_the_wait() -> io::Result<()> {
    // A client may send more than the head (a body we ignore); only its
    // close means it left. It still gets its answer.
    let server = start(Config::default())?;
    let mut stream = TcpStream::connect(server.addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(&http::request(server.addr(), &http::path(50, "still here")))?;
    stream.write_all(b"some body bytes the server does not use")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    assert_eq!(http::parse_response(&answer)?.body, "still here");
    Ok(())
}

#[test]
fn shutdown_lets_in_flight_requests_finish() -> io::Result<()> {
    let server = start(Config { shutdown_grace: Duration::from_secs(30), ..Config::default() })?;
    let addr = server.addr();
    let request = thread::spawn(move || client::get(addr, &http::path(300, "finished")));
    wait_for_open_connections(&server, 1);
    assert_eq!(server.shutdown()?, ShutdownReport { in_flight: 1, cut_short: 0 });
    assert_eq!(request.join().expect("client thread")?.body, "finished");
    // The listener is closed now.
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    Ok(())
}

#[test]
fn shutdown_is_bounded_even_with_slow_and_silent_clients() -> io::Result<()> {
    let server = start(Config { shutdown_grace: Duration::from_millis(50), ..Config::default() })?;
    let addr = server.addr();
    let slow = thread::spawn(move || client::get(addr, &http::path(60_000, "never")));
    let _silent = TcpStream::connect(addr)?; // connects and never sends a byte
    wait_for_open_connections(&server, 2);
    // Both would keep the server busy for a minute or ten seconds; shutdown
    // cuts them short after the grace period instead of waiting.
    assert_eq!(server.shutdown()?, ShutdownReport { in_flight: 2, cut_short: 2 });
    let answer = slow.join().expect("client thread")?;
    assert_eq!(answer.status, 503);
    assert!(answer.body.contains("shutting down"), "{answer:?}");
    Ok(())
}

#[test]
fn client_says_clearly_when_nothing_listens() -> io::Result<()> {
    // Bind to get a free port, then close it: nothing listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let error = client::get(addr, "/0/x").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    assert!(error.to_string().contains(&format!("no delay server at {addr}")), "{error}");
    Ok(())
}

#[test]
fn client_reports_a_server_that_closes_early() -> io::Result<()> {
    // A fake server that promises 10 bytes and sends 3, then closes.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let fake = thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request)?;
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    });
    let error = client::get(addr, "/0/x").unwrap_err();
    fake.join().expect("fake server")?;
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("Content-Length"), "{error}");
    Ok(())
}
