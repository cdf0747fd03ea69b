//! (bench: being written)
