//! Chapter 3: syscalls and the OS event queue, from raw epoll to mio

fn main() {
    println!("this chapter is being written");
}
