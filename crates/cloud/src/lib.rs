//! Everything `manage` does in an OpenStack cloud: authenticate like the `openstack` client,
//! per-cluster application credentials, a pre-flight report, preparation (security groups the CNI
//! needs, anti-affinity server groups, image registration) and a sweep that removes exactly one
//! cluster's resources in dependency order.
//!
//! Every resource we create carries [`identity::MANAGED_TAG`] and the cluster's tag (or, where a
//! service has no tags, an exact name and description), every step is idempotent against the
//! cloud's real state, and every request is retried on transient failures only.

pub mod api;
pub mod appcred;
pub mod connect;
pub mod error;
pub mod identity;
pub mod preflight;
pub mod prepare;
pub mod sweep;

pub use api::{Call, RetryPolicy, Service};
pub use connect::{CloudSelector, Session};
pub use error::{Error, Result};
pub use identity::ClusterIdentity;
