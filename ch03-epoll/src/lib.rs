//! Chapter 3: syscalls and the OS event queue, from raw epoll to mio
//!
//! (Being written: see the chapter issue.)
