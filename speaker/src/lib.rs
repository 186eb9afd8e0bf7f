//! FerroLB speaker library: desired announcements, layer-2 election and
//! membership. The daemon is not implemented yet; see the project's issues.
//!
//! - [`l2_probe`]: the `l2-probe` subcommand, which announces IPs on
//!   layer 2 exactly as the speaker will and reports what happens.
//! - [`bgp_probe`]: the `bgp-probe` subcommand, which opens one BGP
//!   session, announces prefixes and reports what happens.

pub mod bgp_probe;
pub mod l2_probe;
