//! FerroLB controller library: the command-line tools around the configuration
//! (validate, migrate). The allocator and the Kubernetes controller come next.

pub mod allocator;
pub mod cli;
pub mod cluster;
pub mod leader;
pub mod standalone;
