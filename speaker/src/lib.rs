//! FerroLB speaker library: desired announcements, layer-2 election and
//! membership, and the probes.
//!
//! - [`desired`]: the one decision function, what this node announces and
//!   why not the rest.
//! - [`election`]: which node owns a layer-2 IP.
//! - [`peer`]: a BGPPeer as the `bgp` crate's session settings.
//! - [`daemon`]: the node daemon and its adapters.
//! - [`l2_probe`]: the `l2-probe` subcommand, which announces IPs on
//!   layer 2 exactly as the speaker will and reports what happens.
//! - [`bgp_probe`]: the `bgp-probe` subcommand, which opens one BGP
//!   session, announces prefixes and reports what happens.
//! - [`simulation`]: the real membership cores, election and decision on a
//!   simulated network and clock, for failover at 1,000 speakers.

pub mod bgp_probe;
pub mod daemon;
pub mod desired;
pub mod election;
pub mod l2_probe;
pub mod membership;
pub mod peer;
pub mod simulation;

use std::future::Future;
use std::process::ExitCode;

/// Runs a probe's async main on a single-threaded runtime; `name` is the
/// subcommand, for the error message when the runtime cannot start.
pub fn run_probe(name: &str, probe: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(probe),
        Err(err) => {
            eprintln!("ferrolb-speaker {name}: starting the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}
