//! Shard benches (placeholder until the shard issue adds them).

fn main() {}
