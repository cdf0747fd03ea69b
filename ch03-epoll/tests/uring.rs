//! The io_uring `Ring`, operation by operation, on pipes and loopback TCP:
//! NOP batches, a READ that completes only once the other end writes,
//! TIMEOUT, ASYNC_CANCEL, CONNECT / SEND / RECV (with a short send), a full
//! SQ, a CQ that overflows, dropping a ring with an operation in flight,
//! and what "unavailable" means.
//!
//! Where io_uring is not available, each test prints why and passes
//! without running (`common::ring_or_skip`).

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use ch03_epoll::client::{socket_address, tcp_socket};
use ch03_epoll::counting::{self, Syscall};
use ch03_epoll::uring::{Completion, KernelTimespec, Ring, SqFull, Sqe, Unavailable};

mod common;
use common::ring_or_skip;

/// Takes the completions that are ready (after `submit_and_wait` waited
/// for them).
fn take_all(ring: &mut Ring) -> io::Result<Vec<Completion>> {
    let mut taken = Vec::new();
    while let Some(completion) = ring.completion()? {
        taken.push(completion);
    }
    Ok(taken)
}

#[test]
fn many_nops_go_to_the_kernel_in_one_system_call() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("nop batch", || Ring::new(16))? else { return Ok(()) };
    for nop in 0..8 {
        // SAFETY: a NOP carries no address.
        unsafe { ring.push(&Sqe::nop(nop)) }?;
    }
    assert_eq!((ring.queued(), ring.in_flight()), (8, 0), "pushed, not yet submitted");
    let before = counting::snapshot();
    let submitted = ring.submit_and_wait(8)?;
    let calls = counting::snapshot() - before;
    assert_eq!(submitted, 8);
    assert_eq!(calls.of(Syscall::IoUringEnter), 1, "8 submissions and 8 completions, one io_uring_enter");
    let mut done: Vec<u64> = take_all(&mut ring)?.iter().map(|c| c.user_data).collect();
    done.sort_unstable();
    assert_eq!(done, (0..8).collect::<Vec<_>>());
    assert_eq!(ring.in_flight(), 0);
    // Nothing queued, nothing to wait for: no system call at all.
    assert_eq!(ring.submit()?, 0);
    assert_eq!((counting::snapshot() - before).of(Syscall::IoUringEnter), 1);
    Ok(())
}

#[test]
fn a_pipe_read_completes_only_once_the_other_end_writes() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("pipe read", || Ring::new(8))? else { return Ok(()) };
    let (reader, writer) = io::pipe()?;
    let mut buf = vec![0u8; 64];
    let read = Sqe::read(reader.as_fd(), buf.as_mut_ptr(), buf.len(), 1);
    // SAFETY: `buf` is not touched until the READ's completion is taken below.
    unsafe { ring.push(&read) }?;
    assert_eq!(ring.submit()?, 1);
    // Nothing was written: the kernel holds the read (and our buffer).
    assert_eq!(ring.completion()?, None);
    assert_eq!(ring.in_flight(), 1);

    let message = b"hello through the ring";
    let write = Sqe::write(writer.as_fd(), message.as_ptr(), message.len(), 2);
    // SAFETY: `message` is a static byte string.
    unsafe { ring.push(&write) }?;
    ring.submit_and_wait(2)?;
    let mut done = take_all(&mut ring)?;
    done.sort_by_key(|c| c.user_data);
    let n = message.len() as i32;
    assert_eq!(done, [Completion { user_data: 1, res: n, flags: 0 }, Completion { user_data: 2, res: n, flags: 0 }]);
    assert_eq!(&buf[..message.len()], message);
    Ok(())
}

#[test]
fn a_timeout_completes_with_etime() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("timeout", || Ring::new(4))? else { return Ok(()) };
    let after = KernelTimespec::from_duration(std::time::Duration::from_millis(1));
    // SAFETY: `after` lives until the completion is taken below.
    unsafe { ring.push(&Sqe::timeout(&after, 9)) }?;
    ring.submit_and_wait(1)?;
    assert_eq!(ring.completion()?, Some(Completion { user_data: 9, res: -libc::ETIME, flags: 0 }));
    Ok(())
}

#[test]
fn a_cancelled_read_completes_with_ecanceled_and_leaves_the_data() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("cancel", || Ring::new(4))? else { return Ok(()) };
    let (mut reader, mut writer) = io::pipe()?;
    let mut buf = vec![0u8; 16];
    // SAFETY: `buf` outlives the READ: we take its completion below.
    unsafe { ring.push(&Sqe::read(reader.as_fd(), buf.as_mut_ptr(), buf.len(), 1)) }?;
    ring.submit()?;
    // SAFETY: an ASYNC_CANCEL carries no address.
    unsafe { ring.push(&Sqe::cancel(1, 2)) }?;
    ring.submit_and_wait(2)?;
    let mut done = take_all(&mut ring)?;
    done.sort_by_key(|c| c.user_data);
    assert_eq!(done[0], Completion { user_data: 1, res: -libc::ECANCELED, flags: 0 }, "the read, cancelled");
    assert_eq!(done[1], Completion { user_data: 2, res: 0, flags: 0 }, "the cancel found it");
    // The cancelled read took nothing: what is written now is still there.
    writer.write_all(b"later")?;
    drop(writer);
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    assert_eq!(rest, "later");
    Ok(())
}

#[test]
fn connect_send_and_recv_on_loopback_with_a_short_send() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("connect/send/recv", || Ring::new(8))? else { return Ok(()) };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // Small socket buffers on both sides, so a big SEND cannot fit at once.
    set_buffer(listener.as_fd(), libc::SO_RCVBUF, 4096)?;
    let socket = tcp_socket(addr, 0)?; // blocking mode: io_uring never blocks a thread on it
    set_buffer(socket.as_fd(), libc::SO_SNDBUF, 4096)?;

    let (address, length) = socket_address(addr);
    // SAFETY: `address` outlives the CONNECT: we take its completion next.
    unsafe { ring.push(&Sqe::connect(socket.as_fd(), (&raw const address).cast(), length, 1)) }?;
    ring.submit_and_wait(1)?;
    assert_eq!(ring.completion()?, Some(Completion { user_data: 1, res: 0, flags: 0 }));
    let (mut peer, _) = listener.accept()?;

    // A SEND of 1 MiB while the peer reads nothing: the socket takes what
    // fits in its buffers and the completion says how much (a short send).
    let big = vec![7u8; 1024 * 1024];
    // SAFETY: `big` outlives the SEND: we take its completion next.
    unsafe { ring.push(&Sqe::send(socket.as_fd(), big.as_ptr(), big.len(), 2)) }?;
    ring.submit_and_wait(1)?;
    let sent = ring.completion()?.expect("waited for it").result()? as usize;
    assert!(0 < sent && sent < big.len(), "a short send: {sent} of {} bytes", big.len());
    let mut arrived = vec![0u8; sent];
    peer.read_exact(&mut arrived)?;
    assert!(arrived.iter().all(|&b| b == 7));

    // RECV: pending until the peer writes, then the bytes; 0 once it closes.
    let mut buf = vec![0u8; 64];
    // SAFETY: `buf` is not touched until this RECV's completion is taken.
    unsafe { ring.push(&Sqe::recv(socket.as_fd(), buf.as_mut_ptr(), buf.len(), 3)) }?;
    ring.submit()?;
    assert_eq!(ring.completion()?, None, "nothing sent yet");
    peer.write_all(b"pong")?;
    ring.submit_and_wait(1)?;
    let received = ring.completion()?.expect("waited for it");
    assert_eq!((received.user_data, received.res), (3, 4));
    assert_eq!(&buf[..4], b"pong");
    drop(peer);
    // SAFETY: as above.
    unsafe { ring.push(&Sqe::recv(socket.as_fd(), buf.as_mut_ptr(), buf.len(), 4)) }?;
    ring.submit_and_wait(1)?;
    let end = ring.completion()?.expect("waited for it");
    assert_eq!((end.user_data, end.res), (4, 0), "end of file");
    Ok(())
}

/// Sets a socket's send or receive buffer size.
fn set_buffer(socket: BorrowedFd<'_>, option: libc::c_int, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int we pass by pointer with its size;
    // the kernel only reads it during the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const bytes).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[test]
fn connect_to_a_closed_port_completes_with_econnrefused() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("refused connect", || Ring::new(4))? else { return Ok(()) };
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // closed again at once
    let socket = tcp_socket(addr, 0)?;
    let (address, length) = socket_address(addr);
    // SAFETY: `address` outlives the CONNECT: we take its completion next.
    unsafe { ring.push(&Sqe::connect(socket.as_fd(), (&raw const address).cast(), length, 1)) }?;
    ring.submit_and_wait(1)?;
    assert_eq!(ring.completion()?.unwrap().res, -libc::ECONNREFUSED);
    Ok(())
}

#[test]
fn a_full_submission_queue_says_so_instead_of_panicking() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("full SQ", || Ring::new(4))? else { return Ok(()) };
    assert_eq!(ring.sq_entries(), 4);
    for nop in 0..4 {
        // SAFETY: a NOP carries no address.
        unsafe { ring.push(&Sqe::nop(nop)) }?;
    }
    // SAFETY: as above.
    assert_eq!(unsafe { ring.push(&Sqe::nop(4)) }, Err(SqFull { entries: 4 }));
    // Submitting frees the slots: the kernel copied the SQEs.
    assert_eq!(ring.submit()?, 4);
    // SAFETY: as above.
    unsafe { ring.push(&Sqe::nop(4)) }?;
    ring.submit_and_wait(5)?;
    assert_eq!(take_all(&mut ring)?.len(), 5);
    Ok(())
}

#[test]
fn more_completions_than_the_cq_holds_are_all_delivered() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("CQ overflow", || Ring::with_cq_size(4, 4))? else { return Ok(()) };
    assert_eq!((ring.sq_entries(), ring.cq_entries()), (4, 4));
    // Twelve NOPs in three batches, and no completion taken in between:
    // four fill the CQ, eight more complete with nowhere to go.
    const TOTAL: u64 = 12;
    for nop in 0..TOTAL {
        // SAFETY: a NOP carries no address.
        if unsafe { ring.push(&Sqe::nop(nop)) }.is_err() {
            ring.submit()?;
            // SAFETY: as above.
            unsafe { ring.push(&Sqe::nop(nop)) }?;
        }
    }
    ring.submit()?;
    assert_eq!((ring.in_flight(), ring.ready()), (TOTAL, 4), "the CQ is full");
    assert!(ring.overflowed(), "the other eight wait in the kernel's overflow list (IORING_FEAT_NODROP)");

    // `completion` alone delivers all of them: when the CQ runs dry, it
    // asks the kernel to move the overflow list in.
    let mut seen = HashSet::new();
    while let Some(done) = ring.completion()? {
        assert_eq!(done.res, 0);
        assert!(seen.insert(done.user_data), "completion {} twice", done.user_data);
    }
    assert_eq!(seen, (0..TOTAL).collect::<HashSet<_>>());
    assert_eq!((ring.dropped(), ring.in_flight(), ring.overflowed()), (0, 0, false));
    Ok(())
}

#[test]
fn waiting_for_more_than_is_in_flight_is_refused_instead_of_hanging() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("wait for nothing", || Ring::new(4))? else { return Ok(()) };
    let err = ring.submit_and_wait(1).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    // SAFETY: a NOP carries no address.
    unsafe { ring.push(&Sqe::nop(1)) }?;
    assert_eq!(ring.submit_and_wait(2).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    ring.submit_and_wait(1)?;
    Ok(())
}

#[test]
fn dropping_a_ring_cancels_and_waits_for_what_is_in_flight() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("drop in flight", || Ring::new(4))? else { return Ok(()) };
    let (mut reader, mut writer) = io::pipe()?;
    let mut buf = vec![0u8; 16];
    // SAFETY: `buf` lives until after the ring is dropped, and its Drop
    // waits for this READ to complete.
    unsafe { ring.push(&Sqe::read(reader.as_fd(), buf.as_mut_ptr(), buf.len(), 1)) }?;
    ring.submit()?;
    let before = counting::snapshot();
    drop(ring);
    let calls = counting::snapshot() - before;
    assert!(calls.of(Syscall::IoUringEnter) >= 1, "Drop asked the kernel and waited: {calls}");
    drop(buf); // only now: the kernel is done with it
    // The read was cancelled, not left to take what comes later.
    writer.write_all(b"after")?;
    drop(writer);
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    assert_eq!(rest, "after");
    Ok(())
}

#[test]
fn a_ring_can_move_to_another_thread() -> io::Result<()> {
    let Some(mut ring) = ring_or_skip("Send", || Ring::new(4))? else { return Ok(()) };
    // SAFETY: a NOP carries no address.
    unsafe { ring.push(&Sqe::nop(5)) }?;
    let done = std::thread::spawn(move || -> io::Result<Option<Completion>> {
        ring.submit_and_wait(1)?;
        ring.completion()
    });
    assert_eq!(done.join().unwrap()?.map(|c| c.user_data), Some(5));
    Ok(())
}

#[test]
fn bad_sizes_are_refused_with_a_clear_error() {
    for (sq, cq) in [(0, None), (65_536, None), (8, Some(4)), (8, Some(1 << 20))] {
        let err = match cq {
            None => Ring::new(sq),
            Some(cq) => Ring::with_cq_size(sq, cq),
        }
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{sq}/{cq:?}: {err}");
        assert_eq!(Unavailable::from_error(&err), None, "a bad size is not 'io_uring unavailable'");
    }
}

#[test]
fn setup_errors_are_classified_as_unavailable_or_not() {
    let errno = io::Error::from_raw_os_error;
    assert_eq!(Unavailable::classify(&errno(libc::ENOSYS), None), Some(Unavailable::NotInKernel));
    assert_eq!(Unavailable::classify(&errno(libc::EPERM), Some(2)), Some(Unavailable::Disabled));
    assert_eq!(Unavailable::classify(&errno(libc::EPERM), Some(1)), Some(Unavailable::NotInGroup));
    // Allowed by the sysctl (or no such sysctl), refused all the same: seccomp.
    for sysctl in [Some(0), None] {
        let refused = Some(Unavailable::Refused { errno: libc::EPERM });
        assert_eq!(Unavailable::classify(&errno(libc::EPERM), sysctl), refused);
    }
    let lsm = Unavailable::classify(&errno(libc::EACCES), Some(0));
    assert_eq!(lsm, Some(Unavailable::Refused { errno: libc::EACCES }));
    let too_old = io::Error::new(io::ErrorKind::Unsupported, Unavailable::TooOld { missing: "IORING_FEAT_NODROP" });
    assert_eq!(Unavailable::classify(&too_old, Some(0)), Some(Unavailable::TooOld { missing: "IORING_FEAT_NODROP" }));
    // Real errors are not "unavailable": they must surface.
    for real in [libc::EINVAL, libc::ENOMEM, libc::EMFILE] {
        assert_eq!(Unavailable::classify(&errno(real), Some(0)), None, "errno {real}");
    }
    assert_eq!(Unavailable::classify(&io::Error::other("something else"), Some(0)), None);
    // Each reason is one line that names the errno or the sysctl.
    assert!(Unavailable::Disabled.to_string().contains("kernel.io_uring_disabled = 2"));
    assert!(Unavailable::NotInKernel.to_string().contains("ENOSYS"));
    assert!(Unavailable::Refused { errno: libc::EPERM }.to_string().contains("seccomp"));
}

/// Compile-time: a driver thread can own a ring.
const _: () = {
    const fn send<T: Send>() {}
    send::<Ring>();
};
