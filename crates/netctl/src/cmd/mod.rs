//! One module per command group.

pub mod apply;
pub mod ctx;
pub mod inspect;
pub mod netavark;
pub mod show;
pub mod validate;
