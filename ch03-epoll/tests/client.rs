//! The clients (ours on `Poll`, the mio one, and the io_uring one) against
//! the embedded delay server and against tiny misbehaving servers written
//! here. Where io_uring is not available, its client is left out, with the
//! reason printed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch01_os_threads::http::{self, Response, find_head_end};
use ch03_epoll::http_get::{Step, StepOutcome};
use ch03_epoll::uring::Ring;
use ch03_epoll::uring_client::{self, Seen};
use ch03_epoll::{client, mio_client};

mod common;

/// Generous: only reached if something is broken, and then it fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(20);

type GetAll = fn(SocketAddr, &[String], Duration, &mut dyn FnMut(&Step)) -> io::Result<Vec<io::Result<Response>>>;

/// Every client, to run every test on each: the io_uring one only where
/// io_uring is available (otherwise the reason is printed, once per test).
fn clients() -> Vec<(&'static str, GetAll)> {
    let mut clients: Vec<(&'static str, GetAll)> = vec![
        ("epoll", |addr, paths, timeout, observe| client::get_all(addr, paths, timeout, observe)),
        ("mio", |addr, paths, timeout, observe| mio_client::get_all(addr, paths, timeout, observe)),
    ];
    if matches!(common::ring_or_skip("the io_uring client", || Ring::new(1)), Ok(Some(_))) {
        clients.push(("io_uring", |addr, paths, timeout, observe| {
            // Its observer also sees each io_uring_enter; the tests only
            // look at the steps, as for the other clients.
            uring_client::get_all(addr, paths, timeout, |seen| {
                if let Seen::Completed(step) = seen {
                    observe(step);
                }
            })
        }));
    }
    clients
}

/// Runs a client and counts, per token, how often the loop reported it
/// finished. The contract: exactly once each.
fn run(get_all: GetAll, addr: SocketAddr, paths: &[String]) -> io::Result<Vec<io::Result<Response>>> {
    let mut finished: HashMap<usize, usize> = HashMap::new();
    let results = get_all(addr, paths, TIMEOUT, &mut |step: &Step| {
        if matches!(step.outcome, StepOutcome::Answered(_) | StepOutcome::Failed(_)) {
            *finished.entry(step.token).or_default() += 1;
        }
    })?;
    assert_eq!(results.len(), paths.len());
    assert!(finished.values().all(|&n| n == 1), "no request may finish twice: {finished:?}");
    for (token, result) in results.iter().enumerate() {
        if result.is_ok() {
            assert_eq!(finished.get(&token), Some(&1), "answer {token} was reported as it arrived");
        }
    }
    Ok(results)
}

#[test]
fn every_body_arrives_exactly_once_from_the_delay_server() -> io::Result<()> {
    let server = DelayServer::start(Config::default())?;
    let paths: Vec<String> = (0..10).map(|i| http::path(10 * (10 - i), &format!("answer {i}"))).collect();
    for (name, get_all) in clients() {
        let results = run(get_all, server.addr(), &paths)?;
        let bodies: Vec<String> =
            results.into_iter().map(|r| r.and_then(Response::into_ok_body)).collect::<Result<_, _>>()?;
        let expected: Vec<String> = (0..10).map(|i| format!("answer {i}")).collect();
        assert_eq!(bodies, expected, "{name}: results come back in request order");
    }
    server.shutdown()?;
    Ok(())
}

/// A one-connection-at-a-time TCP server that reads each request head and
/// then lets `answer` do what it likes with the socket.
fn tiny_server(
    connections: usize,
    answer: fn(&mut TcpStream) -> io::Result<()>,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handle = thread::spawn(move || {
        for _ in 0..connections {
            let (mut stream, _) = listener.accept()?;
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while find_head_end(&head).is_none() {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            answer(&mut stream)?;
            // Dropping the stream closes it: the client reads end of file.
        }
        Ok(())
    });
    Ok((addr, handle))
}

#[test]
fn a_body_sent_in_many_small_pieces_arrives_whole_and_once() -> io::Result<()> {
    for (name, get_all) in clients() {
        let (addr, server) = tiny_server(3, |stream| {
            stream.set_nodelay(true)?; // send each piece as its own TCP segment
            let body = "pieces ".repeat(20);
            let response =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            for piece in response.as_bytes().chunks(3) {
                stream.write_all(piece)?;
            }
            Ok(())
        })?;
        let paths = vec!["/a".to_string(), "/b".to_string(), "/c".to_string()];
        let results = run(get_all, addr, &paths)?;
        for result in results {
            assert_eq!(result?.body, "pieces ".repeat(20), "{name}");
        }
        server.join().unwrap()?;
    }
    Ok(())
}

#[test]
fn a_server_that_answers_and_closes_at_once_is_counted_once() -> io::Result<()> {
    // The whole answer and the close arrive together: one event can carry
    // the data, the end of file and the hang-up. Later events for the same
    // socket must not produce a second answer (`run` counts).
    for (name, get_all) in clients() {
        let (addr, server) = tiny_server(5, |stream| {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfast")?;
            stream.shutdown(std::net::Shutdown::Both)
        })?;
        let paths: Vec<String> = (0..5).map(|i| format!("/{i}")).collect();
        for result in run(get_all, addr, &paths)? {
            assert_eq!(result?.body, "fast", "{name}");
        }
        server.join().unwrap()?;
    }
    Ok(())
}

#[test]
fn a_server_that_closes_before_the_body_ends_is_an_error() -> io::Result<()> {
    for (name, get_all) in clients() {
        let (addr, server) = tiny_server(1, |stream| {
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\ntoo short")
        })?;
        let mut results = run(get_all, addr, &["/x".to_string()])?;
        let err = results.remove(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}: {err}");
        assert!(err.to_string().contains("Content-Length"), "{name}: {err}");
        assert!(err.to_string().contains("GET /x"), "{name}: the error names the request: {err}");
        server.join().unwrap()?;
    }
    Ok(())
}

#[test]
fn a_server_that_closes_without_answering_is_an_error() -> io::Result<()> {
    for (name, get_all) in clients() {
        let (addr, server) = tiny_server(1, |_stream| Ok(()))?;
        let mut results = run(get_all, addr, &["/silent".to_string()])?;
        let err = results.remove(0).unwrap_err();
        // End of file before any byte: not a response, so bad data, named.
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}: {err}");
        assert!(err.to_string().contains("GET /silent") && err.to_string().contains("after 0 bytes"), "{name}: {err}");
        server.join().unwrap()?;
    }
    Ok(())
}

#[test]
fn a_refused_connection_is_a_clear_error() -> io::Result<()> {
    // Bind to get a free port, then close it: nobody listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    for (name, get_all) in clients() {
        let mut results = get_all(addr, &["/1/x".to_string()], TIMEOUT, &mut |_| {})?;
        let err = results.remove(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{name}: {err}");
        assert!(err.to_string().contains(&format!("no delay server at {addr}")), "{name}: {err}");
    }
    Ok(())
}

#[test]
fn a_bad_address_is_a_clear_error() -> io::Result<()> {
    // The broadcast address cannot be connected to with TCP: the kernel
    // refuses at once (ENETUNREACH), before any packet is sent.
    let addr: SocketAddr = "255.255.255.255:80".parse().unwrap();
    for (name, get_all) in clients() {
        let mut finished = 0;
        let mut results = get_all(addr, &["/1/x".to_string()], TIMEOUT, &mut |_| finished += 1)?;
        let err = results.remove(0).unwrap_err();
        // Under readiness, the connect fails before any event: the request
        // ends at once, with the kernel's reason, and the loop never waits
        // for it. Under io_uring the CONNECT is an operation like any other:
        // its one completion carries the error.
        assert_eq!(err.kind(), io::ErrorKind::NetworkUnreachable, "{name}: {err}");
        assert!(err.to_string().contains("255.255.255.255:80"), "{name}: {err}");
        let steps = if name == "io_uring" { 1 } else { 0 };
        assert_eq!(finished, steps, "{name}: steps handled for a socket that never connected");
    }
    Ok(())
}

#[test]
fn a_server_that_never_answers_times_out() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?; // accepts (the kernel does), never answers
    for (name, get_all) in clients() {
        let mut results =
            get_all(listener.local_addr()?, &["/never".to_string()], Duration::from_millis(50), &mut |_| {})?;
        let err = results.remove(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{name}: {err}");
    }
    Ok(())
}

#[test]
fn a_timeout_too_long_for_the_clock_is_an_error_not_a_panic() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    for (name, get_all) in clients() {
        let err = get_all(listener.local_addr()?, &["/0/x".to_string()], Duration::MAX, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}: {err}");
    }
    Ok(())
}
