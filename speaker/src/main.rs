//! `ferrolb-speaker`: the node daemon (layer-2 and BGP announcements).
//!
//! Only the command-line shell exists so far; the daemon lands with the speaker work.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ferrolb-speaker",
    version,
    about = "FerroLB speaker: makes Service IPs reachable from this node"
)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!("ferrolb-speaker: the node daemon is not implemented yet; nothing to run");
    ExitCode::from(2)
}
