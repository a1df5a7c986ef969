//! One module per command group.

pub mod apply;
pub mod cni;
pub mod completions;
pub mod ctx;
pub mod inspect;
pub mod man;
pub mod netavark;
pub mod schema;
pub mod show;
pub mod validate;
