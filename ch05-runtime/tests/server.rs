//! The async delay server answers like chapter 1's, byte for byte, and
//! behaves as a production server should.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ch01_os_threads::delay_server::{self, DelayServer};
use ch01_os_threads::{client, http};
use ch05_runtime::server::{AsyncDelayServer, Config};

/// Sends raw bytes and reads the whole answer (the server closes after it).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(bytes)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Waits (bounded, without sleeping) until `condition` holds.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::yield_now();
    }
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
fn a_silent_client_is_dropped_after_the_idle_limit() -> io::Result<()> {
    let server = AsyncDelayServer::start(Config { idle_timeout: Duration::from_millis(50), ..Config::default() })?;
    let mut silent = TcpStream::connect(server.addr())?;
    silent.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut answer = Vec::new();
    silent.read_to_end(&mut answer)?; // returns once the server closes
    assert!(answer.is_empty(), "a client that sent nothing gets no answer");
    wait_until("the connection is counted as closed", || server.open_connections() == 0);
    Ok(())
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
