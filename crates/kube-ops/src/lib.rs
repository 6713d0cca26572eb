//! Kubernetes operations of the pivot: the `clusterctl move` semantics, journaled and fast.
//!
//! - [`graph`]: discovery and the object graph (types, owners, soft owners, tenants), as clusterctl;
//! - [`checks`]: providers, paused objects, provisioning;
//! - [`plan`]: the move set in owner layers, serialisable;
//! - [`admission`]: which types' deletes a webhook or admission policy sees (they get the
//!   delete-for-move annotation first);
//! - [`execute`]: runs a plan against a source and a target (bounded parallelism per layer);
//! - [`journal`]: the durable record that makes a killed move resumable;
//! - [`backup`]: `--to-directory` / `--from-directory` in clusterctl's file layout;
//! - [`mover`]: a whole move, tying the above together;
//! - [`cluster`]: the one client per cluster every request goes through (timeouts, retries, counts).

pub mod admission;
pub mod backup;
pub mod checks;
pub mod cluster;
pub mod error;
pub mod execute;
pub mod fixtures;
pub mod graph;
pub mod journal;
pub mod mover;
pub mod plan;

pub use cluster::{Cluster, ClusterRef, RequestStats, install_crypto_provider};
pub use error::{Error, Result};
pub use mover::{MoveOptions, MoveReport, dry_run, move_objects};
pub use plan::Plan;
