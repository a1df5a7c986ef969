//! One module per command group.

pub mod apply;
pub mod ctx;
pub mod show;
pub mod validate;
