//! Admission benchmark (arrives shortly).

fn main() {}
