//! FerroLB controller library: the command-line tools around the configuration
//! (validate, migrate). The allocator and the Kubernetes controller come next.

pub mod cli;
pub mod leader;
