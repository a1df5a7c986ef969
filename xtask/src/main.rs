//! netctl's task runner.
fn main() {}
