//! What every chapter binary does at the end of `main`: an error becomes one
//! line on stderr and exit code 1, never a backtrace (not even with
//! `RUST_BACKTRACE=1`: a learner who typed `--port http` needs the reason,
//! not the program's call stack).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::{say, sys};

/// The exit code for `result`, after printing its error as
/// `error: what happened: why` (the whole chain of causes, on one line).
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the causes one after the other on one line; `{:?}`
            // (what returning the error from `main` prints) adds a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end the program quietly, as it ends `ls` or `cat`.
///
/// `cargo run -p ch03-epoll | head` closes the pipe after ten lines. A Rust
/// program ignores the `SIGPIPE` signal the kernel then sends, so the next
/// `println!` fails with `EPIPE` and panics with a backtrace. With the
/// signal's default action restored, the kernel simply ends the process,
/// which is what a learner who typed `| head` wants. Every chapter binary
/// calls this first thing in `main`.
pub fn quiet_closed_pipes() {
    // SAFETY: `signal` with `SIG_DFL` installs no handler of ours, so no code
    // can run at an unexpected moment; it only changes what the kernel does
    // when a write meets a pipe with no reader.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The error for an argument the binary does not know: one line that points
/// at `--help` instead of printing all of it.
pub fn unknown(what: &str, arg: &str) -> anyhow::Error {
    anyhow::anyhow!("unknown {what} {arg:?} (see --help)")
}

/// What `serve` was asked for: chapter 1's and chapter 5's delay servers
/// take the same options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// `--host` and `--port` (default `127.0.0.1:8080`; port 0 lets the OS choose).
    pub addr: SocketAddr,
    /// `--max-connections`, if given.
    pub max_connections: Option<usize>,
}

impl ServeOptions {
    /// Parses `--host H`, `--port N` and `--max-connections N`.
    pub fn parse(args: &[String]) -> anyhow::Result<ServeOptions> {
        let mut host = "127.0.0.1".to_string();
        let mut port: u16 = 8080;
        let mut max_connections = None;
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value (see --help)"));
            match flag.as_str() {
                "--host" => host = value()?.clone(),
                "--port" => {
                    let text = value()?;
                    port =
                        text.parse().with_context(|| format!("--port takes a number from 0 to 65535, not {text:?}"))?;
                }
                "--max-connections" => {
                    let text = value()?;
                    max_connections =
                        Some(text.parse().with_context(|| format!("--max-connections takes a number, not {text:?}"))?);
                }
                _ => return Err(unknown("serve option", flag)),
            }
        }
        let ip: IpAddr = host.parse().with_context(|| format!("--host {host:?} is not an IP address"))?;
        Ok(ServeOptions { addr: SocketAddr::new(ip, port), max_connections })
    }
}

/// The `[server]` lines a `serve` prints once it listens on `addr`: how to
/// try it and what learners set `DELAY_SERVER` to.
///
/// 0.0.0.0 means "every interface"; it is not an address anyone can connect
/// to, so the hints then name this machine's own addresses instead.
pub fn print_serve_hints(addr: SocketAddr) {
    let reachable = if addr.ip().is_unspecified() { reachable_addresses(addr) } else { vec![addr] };
    match reachable.first() {
        Some(first) => {
            say!("server", "try: curl http://{first}/200/hello");
            for other in &reachable {
                say!("server", "learners: DELAY_SERVER={other} cargo run -p ch03-epoll");
            }
        }
        None => {
            let port = addr.port();
            say!("server", "learners: DELAY_SERVER=<this machine's IP address>:{port} cargo run -p ch03-epoll");
        }
    }
    say!("server", "press Ctrl-C to stop");
}

/// This machine's addresses of the same family as `addr` (which listens on
/// all of them), with `addr`'s port: loopback last, since other machines
/// cannot use it.
fn reachable_addresses(addr: SocketAddr) -> Vec<SocketAddr> {
    let mut ips: Vec<IpAddr> = sys::interface_addresses()
        .unwrap_or_default()
        .into_iter()
        .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .collect();
    ips.sort_by_key(|ip| ip.is_loopback());
    ips.into_iter().map(|ip| SocketAddr::new(ip, addr.port())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_a_server_on_every_interface_name_real_addresses() {
        let everywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let hints = reachable_addresses(everywhere);
        assert!(hints.contains(&"127.0.0.1:8080".parse().unwrap()), "{hints:?}");
        assert!(hints.iter().all(|hint| !hint.ip().is_unspecified() && hint.is_ipv4() && hint.port() == 8080));
        assert!(hints.last().is_some_and(|hint| hint.ip().is_loopback()), "loopback last: {hints:?}");
    }

    #[test]
    fn serve_options_parse_and_refuse_clearly() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let options = ServeOptions::parse(&args(&["--host", "0.0.0.0", "--port", "0", "--max-connections", "7"]));
        assert_eq!(options.unwrap(), ServeOptions { addr: "0.0.0.0:0".parse().unwrap(), max_connections: Some(7) });
        assert_eq!(ServeOptions::parse(&[]).unwrap().addr, "127.0.0.1:8080".parse().unwrap());
        let error = |list: &[&str]| format!("{:#}", ServeOptions::parse(&args(list)).unwrap_err());
        assert!(error(&["--port", "http"]).contains("--port takes a number from 0 to 65535, not \"http\""));
        assert!(error(&["--port"]).contains("--port needs a value"));
        assert!(error(&["--host", "localhost:1"]).contains("is not an IP address"));
        assert!(error(&["--colour"]).contains("unknown serve option"));
    }
}
