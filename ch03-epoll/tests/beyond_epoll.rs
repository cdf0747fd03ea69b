//! Readiness outside our `Poll`: what `poll(2)` and `select(2)` say about a
//! regular file, and what mio's `Waker` is made of.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use ch03_epoll::poll::{Interest, Poll, Token};

#[test]
fn poll_and_select_call_a_regular_file_always_ready() -> io::Result<()> {
    // Our own executable, opened for reading only.
    let file = File::open(std::env::current_exe()?)?;
    let fd = file.as_raw_fd();

    // epoll refuses it (EPERM: a regular file has no "wait until ready")...
    let err = Poll::new()?.registry().register(&file, Token(0), Interest::READABLE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));

    // ...poll(2) accepts it and says "ready" for reading *and* writing, at
    // once, though the file is open read-only: a file without a `poll`
    // method gets the kernel's DEFAULT_POLLMASK (IN | OUT | RDNORM | WRNORM,
    // include/linux/poll.h). POSIX: "Regular files shall always poll TRUE
    // for reading and writing."
    let mut pollfd = libc::pollfd { fd, events: libc::POLLIN | libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, and we say so (nfds = 1); timeout 0 only looks.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    assert_eq!(ready, 1, "poll(2): {}", io::Error::last_os_error());
    assert_eq!(pollfd.revents & (libc::POLLIN | libc::POLLOUT), libc::POLLIN | libc::POLLOUT);

    // ...and so does select(2) (POSIX: regular files "shall always select
    // true for ready to read, ready to write, and error conditions").
    assert!(fd < libc::FD_SETSIZE as RawFd, "select(2) only takes fds below FD_SETSIZE");
    // SAFETY: fd_set is a plain bit array; all-zero is the empty set.
    let (mut read_set, mut write_set): (libc::fd_set, libc::fd_set) = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is below FD_SETSIZE (checked above), so FD_SET stays inside the array.
    unsafe {
        libc::FD_SET(fd, &mut read_set);
        libc::FD_SET(fd, &mut write_set);
    }
    let mut no_wait = libc::timeval { tv_sec: 0, tv_usec: 0 };
    // SAFETY: both sets and the timeout are valid and writable; nfds = fd + 1
    // covers the only bit set; a null error set is allowed.
    let ready = unsafe { libc::select(fd + 1, &mut read_set, &mut write_set, std::ptr::null_mut(), &mut no_wait) };
    assert_eq!(ready, 2, "select(2): {}", io::Error::last_os_error());
    // SAFETY: `fd` is below FD_SETSIZE; the sets are valid.
    assert!(unsafe { libc::FD_ISSET(fd, &read_set) && libc::FD_ISSET(fd, &write_set) });
    Ok(())
}

/// The fds of this process that are eventfds (`/proc/self/fd/N` links to
/// `anon_inode:[eventfd]`).
fn eventfds() -> io::Result<HashSet<RawFd>> {
    let mut found = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else { continue }; // closed meanwhile
        if target.to_string_lossy() == "anon_inode:[eventfd]"
            && let Ok(fd) = entry.file_name().to_string_lossy().parse()
        {
            found.insert(fd);
        }
    }
    Ok(found)
}

/// `/proc/self/fdinfo/<fd>`: the kernel's own description of an fd, one
/// `name: value` per line (an epoll fd has one `tfd:` line per registration).
fn fdinfo(fd: RawFd) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
}

/// An eventfd's counter (`eventfd-count:` in fdinfo, printed in hex).
fn eventfd_count(fd: RawFd) -> io::Result<u64> {
    let info = fdinfo(fd)?;
    let value = info.lines().find_map(|line| line.strip_prefix("eventfd-count:")).map(str::trim);
    value
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no eventfd-count in {info:?}")))
}

#[test]
fn mios_waker_is_an_eventfd_in_its_epoll_set() -> io::Result<()> {
    let before = eventfds()?;
    let mut poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), mio::Token(9))?;
    let new: Vec<RawFd> = eventfds()?.difference(&before).copied().collect();
    assert_eq!(new.len(), 1, "Waker::new made exactly one eventfd: {new:?}");
    let eventfd = new[0];

    // It is registered in mio's epoll instance under the waker's token,
    // edge-triggered (fdinfo: `tfd: <fd> events: <bits> data: <token> ...`).
    let epoll_info = fdinfo(poll.as_raw_fd())?;
    let registration = epoll_info
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["tfd:", tfd, "events:", events, "data:", data, ..] => Some((
                    tfd.parse::<RawFd>().ok()?,
                    u32::from_str_radix(events, 16).ok()?,
                    u64::from_str_radix(data, 16).ok()?,
                )),
                _ => None,
            }
        })
        .find(|&(tfd, _, _)| tfd == eventfd);
    let (_, events, data) = registration.expect("the eventfd is in mio's interest list");
    assert_eq!(data, 9, "its token");
    assert_ne!(events & libc::EPOLLIN as u32, 0);
    assert_ne!(events & libc::EPOLLET as u32, 0, "mio registers edge-triggered");

    // `wake` adds 1 to the counter (a write(2) of 8 bytes). mio never reads it
    // back on Linux: each write is a new arrival, so each is a new edge.
    let mut events = mio::Events::with_capacity(4);
    for wakes in 1..=2 {
        waker.wake()?;
        assert_eq!(eventfd_count(eventfd)?, wakes);
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        let tokens: Vec<mio::Token> = events.iter().map(|e| e.token()).collect();
        assert_eq!(tokens, [mio::Token(9)], "wake {wakes} is an event");
    }
    drop(waker);
    assert!(!eventfds()?.contains(&eventfd), "dropping the Waker closes its eventfd");
    Ok(())
}
