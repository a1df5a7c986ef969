//! The `netctl` command line.
fn main() {}
