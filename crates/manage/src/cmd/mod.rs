//! One module per verb.

pub mod init;
pub mod render;
pub mod seal;
pub mod validate;
