// Shared by the fuzz targets: split the input into chunks whose sizes come from the input.

/// The first byte picks a chunk size (1..=256); the rest is the stream.
pub fn chunks(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&size, rest)) => (usize::from(size) + 1, rest),
        None => (1, data),
    }
}
