//! `tollgate`: the control-plane service and admin CLI.

fn main() {}
