//! One module per verb.

pub mod cloud;
pub mod init;
pub mod kind;
pub mod move_;
pub mod render;
pub mod seal;
pub mod validate;
