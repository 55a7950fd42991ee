//! `tollgate-inspect`: what would Tollgate charge for this recorded call?
fn main() {}
