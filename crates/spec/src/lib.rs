//! The user-facing cluster definition: its types and defaults ([`model`]), layered loading from
//! `clusters/` with precise diagnostics ([`load`]), validation ([`validate`]) and rendering into the
//! objects Cluster API needs ([`render`]), checked against the real CRD schemas ([`crd`]).
//!
//! This crate does no network I/O; it reads files only in [`load`] and [`crd`].

pub mod crd;
pub mod diag;
pub mod model;
pub mod render;

pub use diag::{Diagnostic, Diagnostics, Kind, SourceLoc};
pub use model::*;
