//! FerroLB's configuration model.
//!
//! - [`crd`]: the custom resources under `ferrolb.io` (MetalLB-shaped kinds and fields).
//! - [`addr`]: address ranges and exact address counting for IPv4 and IPv6.
//! - [`validate`]: whole-configuration validation that reports every problem.
//! - [`manifest`] and [`source`]: reading Kubernetes-style YAML, and the standalone directory source.
//! - [`migrate`]: MetalLB manifests to FerroLB ones.
//! - [`fuzzing`]: the bodies of the cargo-fuzz targets (see `docs/FUZZING.md`).

pub mod addr;
pub mod community;
pub mod config;
pub mod crd;
pub mod duration;
pub mod fuzzing;
pub mod manifest;
pub mod migrate;
pub mod problem;
pub mod report;
pub mod selector;
pub mod source;
pub mod validate;
pub mod yaml;

pub use config::Config;
pub use problem::{Problem, Severity};

/// The API group of all FerroLB custom resources.
pub const GROUP: &str = "ferrolb.io";
/// The namespace FerroLB's objects live in by default.
pub const DEFAULT_NAMESPACE: &str = "ferrolb-system";
