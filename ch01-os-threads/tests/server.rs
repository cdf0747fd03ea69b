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

/// Waits (bounded, without sleeping) until the server has `n` open connections.
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
    let cases: [(&str, &[u8], u16); 7] = [
        ("malformed request line", b"HELLO\r\n\r\n", 400),
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
fn concurrent_requests_finish_in_order_of_their_delays() -> io::Result<()> {
    let server = start(Config::default())?;
    let (done, finished) = mpsc::channel();
    let clients: Vec<_> = [600, 200, 400]
        .into_iter()
        .map(|delay| {
            let (addr, done) = (server.addr(), done.clone());
            thread::spawn(move || -> io::Result<()> {
                let body = client::get(addr, &http::path(delay, &delay.to_string()))?.into_ok_body()?;
                done.send(body).map_err(io::Error::other)
            })
        })
        .collect();
    drop(done);
    for client in clients {
        client.join().expect("client thread")?;
    }
    let order: Vec<String> = finished.iter().collect();
    assert_eq!(order, ["200", "400", "600"]);
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
