//! Criterion benches for the request reader, the usage extractor and the stream scanners.
fn main() {}
