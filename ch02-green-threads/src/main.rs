//! Chapter 2: green threads, stackful fibers with our own context switch

fn main() {
    println!("this chapter is being written");
}
