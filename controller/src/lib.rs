//! FerroLB controller library: what the `ferrolb-controller` binary runs (its
//! `crds` subcommand prints [`ferrolb_config::crd::crds_yaml`]).
//!
//! - [`allocator`]: the pure, sans-IO IP allocator (MetalLB's rules: requested
//!   IPs and pools, priorities, sharing, dual-stack; addresses other Services
//!   hold in their status are in use).
//! - [`cluster`]: the Kubernetes controller: watches Services, Namespaces and
//!   FerroLB's configuration, and while it holds the leader Lease ([`leader`],
//!   one Lease per `--lb-class`) runs the allocator and writes Service status,
//!   Events, pool status, metrics and the controller's ConfigurationState.
//! - [`standalone`]: the same allocator over a directory of YAML, without a
//!   cluster; results in `DIR/status/`.
//! - [`cli`]: the `validate` and `migrate` subcommands.

pub mod allocator;
pub mod cli;
pub mod cluster;
pub mod leader;
pub mod memory;
pub mod standalone;
