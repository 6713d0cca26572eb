//! The user-facing cluster definition: its types and defaults ([`model`]), layered loading from
//! `clusters/` with precise diagnostics ([`load`]), validation ([`validate`]) and rendering into the
//! objects Cluster API needs ([`render`]), checked against the real CRD schemas ([`crd`]).
//!
//! This crate does no network I/O; it reads files only in [`load`] and [`crd`].

pub mod crd;
pub mod diag;
pub mod layer;
pub mod load;
pub mod model;
pub mod render;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Kind, SourceLoc};
pub use load::{Loaded, Source, cluster_names, load_cluster, load_sources};
pub use model::*;
