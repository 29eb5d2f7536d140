//! Benches of the shard layer.

fn main() {}
