//! Benchmarks of the shard layer (placeholder until they are written).
fn main() {}
