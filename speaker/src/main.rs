//! `ferrolb-speaker`: the node daemon (layer-2 and BGP announcements).
//!
//! Without a subcommand it runs the daemon (`--standalone DIR --node NAME`);
//! `l2-probe` and `bgp-probe` are diagnostics.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferrolb_speaker::{bgp_probe, daemon, l2_probe};

#[derive(Parser)]
#[command(
    name = "ferrolb-speaker",
    version,
    about = "FerroLB speaker: makes Service IPs reachable from this node"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: daemon::Args,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Announce IPs with ARP/NDP as the speaker would and print one JSON
    /// line per event until SIGINT/SIGTERM (needs CAP_NET_RAW).
    L2Probe(l2_probe::Args),
    /// Open one BGP session as the speaker would, announce prefixes and
    /// print one JSON line per event; on SIGINT/SIGTERM withdraw, send a
    /// Cease NOTIFICATION and exit.
    BgpProbe(bgp_probe::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::L2Probe(args)) => {
            init_logging();
            l2_probe::run(args)
        }
        Some(Command::BgpProbe(args)) => {
            init_logging();
            bgp_probe::run(args)
        }
        None => {
            // Before any thread exists (see the function's docs).
            ferrolb_controller::memory::tune_malloc();
            init_daemon_logging();
            daemon::run(cli.run)
        }
    }
}

/// The daemon logs to stderr at `info` unless `RUST_LOG` says otherwise.
fn init_daemon_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`); stdout is
/// reserved for the probe's JSON lines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
