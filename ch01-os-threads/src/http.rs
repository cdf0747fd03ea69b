//! The tiny slice of HTTP/1.1 the delay server and every client in this
//! workspace speak.
//!
//! Only what the chapters need: one request shape (`GET /<delay_ms>/<message>`)
//! and a response with `Connection: close`, so "read until end of file" is how a
//! client knows it has the whole answer. Later chapters reuse these functions
//! from their non-blocking clients, so there is one parser, not five; and
//! chapter 5's async delay server checks requests with the same
//! [`parse_request`] and answers with the same [`reply`] as this chapter's
//! blocking one, so both give the same answer to every input.

use std::io;
use std::net::SocketAddr;

/// The longest delay the server accepts, in milliseconds (one minute).
pub const MAX_DELAY_MS: u64 = 60_000;

/// The largest request head (request line plus headers) the server reads
/// before answering `431 Request Header Fields Too Large`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The path that asks the delay server to wait `delay_ms` and then answer
/// `message`, e.g. `path(200, "hello")` is `/200/hello`.
///
/// Characters that cannot appear in a URL path (space, `%`, `?`, `#`, control
/// bytes, non-ASCII) are percent-encoded, so any message survives the trip.
pub fn path(delay_ms: u64, message: &str) -> String {
    let mut path = format!("/{delay_ms}/");
    for byte in message.bytes() {
        if byte.is_ascii_graphic() && !matches!(byte, b'%' | b'?' | b'#') {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// The bytes of a `GET` request for `path`, as a client sends them.
///
/// `Connection: close` asks the server to close the socket after the answer,
/// which is how the client knows the body is complete.
pub fn request(host: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. `200` or `503`.
    pub status: u16,
    /// The reason phrase after the code, e.g. `OK`.
    pub reason: String,
    /// The body, decoded as UTF-8 (the delay server only sends text).
    pub body: String,
}

impl Response {
    /// The body if the status is `200 OK`; otherwise an error that names the
    /// status and carries the server's explanation.
    pub fn into_ok_body(self) -> io::Result<String> {
        if self.status == 200 {
            Ok(self.body)
        } else {
            Err(io::Error::other(format!(
                "delay server answered {} {}: {}",
                self.status,
                self.reason,
                self.body.trim_end()
            )))
        }
    }
}

/// Parses a complete response (everything read until the server closed).
///
/// The body is what follows the blank line. If the server sent a
/// `Content-Length`, the body must be exactly that long: a shorter one means
/// the server closed early, and is reported as an error instead of being
/// passed off as the whole message.
pub fn parse_response(bytes: &[u8]) -> io::Result<Response> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let head_end = find_head_end(bytes)
        .ok_or_else(|| invalid(format!("response ended after {} bytes, before the end of its headers", bytes.len())))?;
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| invalid("response headers are not UTF-8".into()))?;
    let body = &bytes[head_end + 4..];

    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let reason = parts.next().unwrap_or_default().to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("not an HTTP/1.x status line: {status_line:?}")));
    }
    let status = code.parse::<u16>().map_err(|_| invalid(format!("bad status code in {status_line:?}")))?;

    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let expected: usize = value.trim().parse().map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            if body.len() != expected {
                return Err(invalid(format!(
                    "body is {} bytes but Content-Length says {expected} (did the server close early?)",
                    body.len()
                )));
            }
        }
    }
    let body = String::from_utf8(body.to_vec()).map_err(|_| invalid("response body is not UTF-8".into()))?;
    Ok(Response { status, reason, body })
}

/// Where the head ends: the index of the blank line `\r\n\r\n`, if present.
pub fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|window| window == b"\r\n\r\n")
}

/// An answer ready to be written: its status (for logs and tests) and its
/// bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code, e.g. `200` or `400`.
    pub status: u16,
    /// The whole response: status line, headers, blank line, body.
    pub bytes: Vec<u8>,
}

/// Builds a response with a plain-text body and `Connection: close`.
pub fn reply(status: u16, reason: &str, body: &str) -> Reply {
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    // Error bodies end in a newline so they print nicely in a terminal; a 200
    // body is exactly the message, byte for byte.
    let body = if status == 200 { body.to_string() } else { format!("{body}\n") };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    Reply { status, bytes: [head.into_bytes(), body.into_bytes()].concat() }
}

/// A valid delay request: wait `delay_ms`, then answer `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// How long to wait before answering, in milliseconds (at most [`MAX_DELAY_MS`]).
    pub delay_ms: u64,
    /// The body to answer with, percent-decoded.
    pub message: String,
}

// ANCHOR: parse_request
/// Checks a request head (everything up to and including the blank line):
/// the request line must be `GET /<delay_ms>/<message> HTTP/1.x`, and every
/// header line `name: value`. A bad one comes back as the [`Reply`] that says
/// what is wrong.
pub fn parse_request(head: &[u8]) -> Result<Request, Reply> {
    let bad = |detail: &str| reply(400, "Bad Request", detail);
    let head = std::str::from_utf8(head).map_err(|_| bad("the request is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(bad("expected a request line like `GET /200/hello HTTP/1.1`"));
    };
    let is_version = |v: &str| v.strip_prefix("HTTP/1.").is_some_and(|minor| minor.len() == 1 && is_digits(minor));
    if !is_token(method) || !is_version(version) {
        return Err(bad("expected a request line like `GET /200/hello HTTP/1.1`"));
    }
    for line in lines.take_while(|line| !line.is_empty()) {
        check_header_line(line).map_err(|why| bad(&why))?;
    }
    if method != "GET" {
        return Err(reply(405, "Method Not Allowed", &format!("{method} is not supported; use GET")));
    }
    let Some((delay, message)) = target.strip_prefix('/').and_then(|t| t.split_once('/')) else {
        return Err(bad("expected a path like /<delay_ms>/<message>, e.g. /200/hello"));
    };
    let delay_ms = parse_delay(delay).map_err(|why| bad(&why))?;
    let message = percent_decode(message).ok_or_else(|| bad("the message has a broken %-escape"))?;
    Ok(Request { delay_ms, message })
}
// ANCHOR_END: parse_request

// ANCHOR: grammar
/// The delay: ASCII digits only, at most [`MAX_DELAY_MS`]. Leading zeros are
/// fine (`007` is 7 ms); a sign (`+100`), spaces, a fraction or an empty
/// segment are not a number of milliseconds. Too many digits for any number
/// is "over the limit", not "not a number".
fn parse_delay(text: &str) -> Result<u64, String> {
    if !is_digits(text) {
        return Err(format!("the delay {text:?} is not a whole number of milliseconds (digits only)"));
    }
    match text.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Ok(ms),
        _ => Err(format!("the delay {text} ms is over the limit of {MAX_DELAY_MS} ms")),
    }
}

/// One header line, as RFC 9112 section 5 has it: `name: value`, where the
/// name is a token and touches the colon (no whitespace before it: a server
/// must answer that with 400, because proxies disagree on what it means),
/// and the value holds no control characters except tab. A line starting
/// with a space or tab would continue the previous one ("obsolete line
/// folding"), which a server must also refuse or undo; we refuse it.
fn check_header_line(line: &str) -> Result<(), String> {
    if line.starts_with([' ', '\t']) {
        return Err(format!("header line {line:?} starts with whitespace (obsolete line folding)"));
    }
    let Some((name, value)) = line.split_once(':') else {
        return Err(format!("header line {line:?} has no colon; expected `Name: value`"));
    };
    if name.ends_with([' ', '\t']) {
        return Err(format!("header name {name:?} is followed by whitespace before the colon"));
    }
    if !is_token(name) {
        return Err(format!("header name {name:?} is not a token (letters, digits and !#$%&'*+-.^_`|~)"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("the value of header {name:?} holds a control character"));
    }
    Ok(())
}

/// RFC 9110's `token`: one or more of letters, digits and ``!#$%&'*+-.^_`|~``.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// One or more ASCII digits, nothing else.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
// ANCHOR_END: grammar

/// Decodes `%XX` escapes in a path segment. `None` if an escape is broken or
/// the result is not UTF-8.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encodes_what_a_url_cannot_hold() {
        assert_eq!(path(200, "hello"), "/200/hello");
        assert_eq!(path(5, "a b%c"), "/5/a%20b%25c");
        assert_eq!(percent_decode("a%20b%25c").as_deref(), Some("a b%c"));
        assert_eq!(percent_decode("bad%2"), None);
    }

    fn status(head: &str) -> u16 {
        match parse_request(head.as_bytes()) {
            Ok(_) => 200,
            Err(response) => response.status,
        }
    }

    #[test]
    fn parses_good_requests() {
        let request = parse_request(b"GET /250/hi%20there HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(request, Request { delay_ms: 250, message: "hi there".into() });
        assert_eq!(status("GET /0/ HTTP/1.0\r\n\r\n"), 200);
    }

    #[test]
    fn rejects_bad_requests_with_their_status() {
        assert_eq!(status("hello\r\n\r\n"), 400);
        assert_eq!(status("GET /1/a HTTP/1.1 extra\r\n\r\n"), 400);
        assert_eq!(status("GET /1/a SPDY/3\r\n\r\n"), 400);
        assert_eq!(status("GET /1/a HTTP/1.x\r\n\r\n"), 400);
        assert_eq!(status("GET /1/a HTTP/1.10\r\n\r\n"), 400);
        assert_eq!(status("POST /1/a HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status("get /1/a HTTP/1.1\r\n\r\n"), 405, "methods are case-sensitive tokens");
        assert_eq!(status("GET /200 HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /1/%zz HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn the_delay_is_digits_only_and_at_most_a_minute() {
        for (delay, expected) in [
            ("0", Ok(0)),
            ("60000", Ok(60_000)),
            ("007", Ok(7)), // leading zeros: still a number of milliseconds
            ("000000000000000000000000060000", Ok(60_000)),
            ("60001", Err("over the limit")),
            ("99999999999999999999999", Err("over the limit")), // too big for u64: still "over"
            ("+100", Err("not a whole number")),
            ("-1", Err("not a whole number")),
            ("1.5", Err("not a whole number")),
            ("abc", Err("not a whole number")),
            ("", Err("not a whole number")),
            ("1e3", Err("not a whole number")),
            ("\u{0661}", Err("not a whole number")), // ARABIC-INDIC DIGIT ONE: a digit, but not ASCII
        ] {
            let got = parse_delay(delay);
            match expected {
                Ok(ms) => assert_eq!(got, Ok(ms), "{delay:?}"),
                Err(why) => assert!(got.as_ref().is_err_and(|e| e.contains(why)), "{delay:?}: {got:?}"),
            }
        }
        assert_eq!(status("GET /+100/x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /007/x HTTP/1.1\r\n\r\n"), 200);
    }

    #[test]
    fn header_lines_must_be_name_colon_value() {
        let with = |header: &str| status(&format!("GET /1/a HTTP/1.1\r\n{header}\r\n\r\n"));
        for good in ["Host: x", "Host:x", "X-Empty:", "Accept: */*", "User-Agent: a\tb", "X_Y.z~1: v"] {
            assert_eq!(with(good), 200, "{good:?}");
        }
        for bad in [
            "Host : x",      // whitespace before the colon: RFC 9112 says 400
            "Host\t: x",     // a tab too
            "no colon here", // not a field line
            ": x",           // empty name
            "Ho st: x",      // a space inside the name
            " folded: x",    // obsolete line folding
            "X: a\u{7}b",    // a control character in the value
        ] {
            assert_eq!(with(bad), 400, "{bad:?}");
        }
        let Err(answer) = parse_request(b"GET /1/a HTTP/1.1\r\nHost : x\r\n\r\n") else { panic!("accepted") };
        assert!(String::from_utf8_lossy(&answer.bytes).contains("before the colon"));
        // A bad header is reported before a bad method: the head is malformed first.
        assert_eq!(status("POST /1/a HTTP/1.1\r\nBad Header: x\r\n\r\n"), 400);
    }

    #[test]
    fn parses_a_response_and_checks_its_length() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let response = parse_response(full).unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "hello"));

        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_response(short).unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
