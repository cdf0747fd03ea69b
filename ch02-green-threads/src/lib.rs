//! Chapter 2: green threads, stackful fibers with our own context switch
//!
//! (Being written: see the chapter issue.)
