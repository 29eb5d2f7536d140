//! Benchmarks of the cache layer (written below).
fn main() {}
