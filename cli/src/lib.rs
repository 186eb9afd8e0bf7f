//! FerroLB's kubectl plugin, `kubectl-ferrolb`: `explain` says in one place
//! why a Service is pending, assigned but not announced, or announced, and
//! what a node or a BGP peer announces, computed with the controller's
//! allocator and the speakers' decision function (never a second
//! implementation of their rules), in a cluster (get/list only: the
//! `ferrolb-view` ClusterRole is enough) or over a standalone directory.
//!
//! - [`world`]: reading the facts (directory or cluster) into a [`world::World`].
//! - [`explain`]: the verdicts and their reasons (pure; the JSON schema).
//! - [`plan`]: `plan -f NEW.yaml`, what a proposal would change (pure; the JSON schema).
//! - [`render`]: the verdicts and plans as text.
//! - [`cmd`]: the command line.

pub mod cmd;
pub mod explain;
pub mod plan;
pub mod render;
pub mod world;
