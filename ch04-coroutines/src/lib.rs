//! Chapter 4: stackless coroutines as hand-written state machines
//!
//! (Being written: see the chapter issue.)
