//! Small helpers over Linux system calls that every chapter uses: one home
//! for each, so that a fix lands everywhere at once.
//!
//! - [`syscall!`](crate::syscall): the C convention "returns -1 and leaves
//!   the reason in `errno`" turned into an [`io::Result`];
//! - [`pin_to_first_allowed_cpu`] / [`pin_to_cpu`]: run the calling thread on
//!   one CPU, and put its own CPU set back afterwards ([`Pinned`]);
//! - [`raise_open_files_limit`]: room for thousands of sockets;
//! - [`interface_addresses`]: this machine's IP addresses, for the hints a
//!   server prints when it listens on all of them.

use std::io;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ANCHOR: syscall_macro
/// Turns the C convention "returns -1 and leaves the reason in `errno`" into
/// an [`std::io::Result`].
///
/// The caller writes the `unsafe` block (and the `// SAFETY:` comment saying
/// why the call is sound) itself, so no unsafety hides inside the macro:
///
/// ```
/// use ch01_os_threads::syscall;
/// // SAFETY: getpid takes no arguments and cannot fail.
/// let pid = syscall!(unsafe { libc::getpid() })?;
/// assert!(pid > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[macro_export]
macro_rules! syscall {
    ($call:expr) => {{
        let result = $call;
        if result == -1 { Err(std::io::Error::last_os_error()) } else { Ok(result) }
    }};
}
// ANCHOR_END: syscall_macro

/// The CPUs the calling thread may run on (its affinity mask), lowest first.
///
/// Not always `0..cores`: `taskset -c 1`, a container or a cgroup can leave
/// out any CPU, CPU 0 included.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = current_cpu_set()?;
    // SAFETY: CPU_ISSET reads one bit of the array; every index below
    // CPU_SETSIZE lies inside it.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
}

fn current_cpu_set() -> io::Result<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and we pass its exact size; pid 0 means the
    // calling thread.
    syscall!(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok(set)
}

fn set_cpu_set(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid `cpu_set_t` and we pass its exact size; pid 0
    // means the calling thread. The kernel only reads it.
    syscall!(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) })?;
    Ok(())
}

// ANCHOR: pinned
/// The calling thread runs on one CPU until this is dropped; then it may run
/// on exactly the CPUs it was allowed before (not "all of them": the set it
/// had may have been narrowed by `taskset` or a container on purpose).
///
/// Threads started while it is alive inherit the pin. Not `Send`: an
/// affinity belongs to one thread, and restoring it from another thread
/// would change the wrong one.
#[derive(Debug)]
pub struct Pinned {
    /// The thread's CPU set before the pin, put back on drop.
    saved: libc::cpu_set_t,
    /// The CPU it runs on now.
    cpu: usize,
    /// `!Send` and `!Sync`.
    _this_thread: PhantomData<*const ()>,
}

impl Pinned {
    /// The CPU the thread is pinned to.
    pub fn cpu(&self) -> usize {
        self.cpu
    }
}

/// Pins the calling thread to the first CPU it is allowed to run on.
pub fn pin_to_first_allowed_cpu() -> io::Result<Pinned> {
    let cpu = allowed_cpus()?
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("the thread's CPU set is empty: no CPU to pin to"))?;
    pin_to_cpu(cpu)
}

/// Pins the calling thread to `cpu`. The CPU must exist and be one the
/// process's cgroup permits, or the kernel refuses with `EINVAL`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<Pinned> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {cpu} is beyond CPU_SETSIZE")));
    }
    let saved = current_cpu_set()?;
    // SAFETY: all-zero is the empty set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside the array.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    set_cpu_set(&one).map_err(|e| io::Error::new(e.kind(), format!("cannot pin this thread to CPU {cpu}: {e}")))?;
    Ok(Pinned { saved, cpu, _this_thread: PhantomData })
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Cannot fail for a set the kernel accepted for this thread before
        // (unless a CPU went offline meanwhile; then the pin simply stays).
        let _ = set_cpu_set(&self.saved);
    }
}
// ANCHOR_END: pinned

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to its
/// hard limit, and returns the new soft limit.
///
/// Every socket is a file descriptor, and the soft limit is often 1 024: too
/// few for a thousand connections. The soft limit is what a process may raise
/// itself, up to the hard limit the administrator set; going beyond the hard
/// limit needs privileges (or `ulimit -Hn` in the shell that starts us).
/// Child processes inherit the raised limit.
pub fn raise_open_files_limit() -> io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the kernel to fill in.
    syscall!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; the kernel only reads it.
        syscall!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    }
    Ok(limit.rlim_cur)
}

/// The IP addresses of this machine's network interfaces (`getifaddrs`),
/// loopback included, each once, IPv4 first.
pub fn interface_addresses() -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for the kernel/C library to store the
    // head of a list it allocates; we free it below with freeifaddrs.
    syscall!(unsafe { libc::getifaddrs(&mut list) })?;
    let mut found = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, which
        // stays valid until freeifaddrs; `ifa_addr` is null or points at a
        // sockaddr whose `sa_family` says which struct it really is.
        unsafe {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*addr.cast::<libc::sockaddr_in>();
                        found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*addr.cast::<libc::sockaddr_in6>();
                        found.push(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)));
                    }
                    _ => {} // link-layer and other families: not an IP address
                }
            }
            entry = (*entry).ifa_next;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed exactly once; no
    // reference into it outlives this line (we copied the addresses out).
    unsafe { libc::freeifaddrs(list) };
    found.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_runs_on_one_allowed_cpu_and_restores_the_set_it_had() -> io::Result<()> {
        // In a thread of its own, so the pin cannot leak into other tests.
        std::thread::spawn(|| -> io::Result<()> {
            let before = allowed_cpus()?;
            assert!(!before.is_empty());
            {
                let pinned = pin_to_first_allowed_cpu()?;
                assert_eq!(pinned.cpu(), before[0]);
                assert_eq!(allowed_cpus()?, [before[0]]);
            }
            assert_eq!(allowed_cpus()?, before, "the set it had, not 0..cores");

            // Narrow the set to its last CPU (like `taskset -c N`): the first
            // allowed CPU is then that one, whatever its number.
            let last = *before.last().expect("not empty");
            let narrowed = pin_to_cpu(last)?;
            let inner = pin_to_first_allowed_cpu()?;
            assert_eq!(inner.cpu(), last);
            drop(inner);
            assert_eq!(allowed_cpus()?, [last], "restores the narrowed set, not every CPU");
            drop(narrowed);
            assert_eq!(allowed_cpus()?, before);
            Ok(())
        })
        .join()
        .expect("test thread")
    }

    #[test]
    fn pinning_to_a_cpu_that_does_not_exist_is_refused() -> io::Result<()> {
        std::thread::spawn(|| -> io::Result<()> {
            let missing = libc::CPU_SETSIZE as usize - 1; // CPU 1023: no machine here has it
            let refused = pin_to_cpu(missing).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "EINVAL: {refused}");
            assert!(refused.to_string().contains("CPU 1023"), "{refused}");
            assert_eq!(pin_to_cpu(usize::MAX).unwrap_err().kind(), io::ErrorKind::InvalidInput);
            Ok(())
        })
        .join()
        .expect("test thread")
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() -> io::Result<()> {
        let soft = raise_open_files_limit()?;
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is writable.
        syscall!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
        assert_eq!((soft, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
        Ok(())
    }

    #[test]
    fn interface_addresses_include_loopback() -> io::Result<()> {
        let addresses = interface_addresses()?;
        assert!(addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addresses:?}");
        Ok(())
    }
}
