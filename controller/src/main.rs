//! `ferrolb-controller`: assigns external IPs to LoadBalancer Services.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrolb-controller",
    version,
    about = "FerroLB controller: external IPs for LoadBalancer Services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every FerroLB CustomResourceDefinition as YAML (deploy/crds.yaml is this output).
    Crds,
    /// Check manifests (files or directories of *.yaml / *.yml) and print every problem.
    /// Exits 1 if any problem is an error, 0 otherwise.
    Validate {
        /// Files or directories to read.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print problems as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert MetalLB manifests (metallb.io objects or the legacy `config` ConfigMap)
    /// to FerroLB ones on stdout. Use `-` to read stdin.
    Migrate { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", ferrolb_config::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Validate { paths, json } => ferrolb_controller::cli::validate(&paths, json),
        Command::Migrate { file } => ferrolb_controller::cli::migrate(&file),
    }
}
