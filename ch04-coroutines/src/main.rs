//! Chapter 4: stackless coroutines as hand-written state machines

fn main() {
    println!("this chapter is being written");
}
