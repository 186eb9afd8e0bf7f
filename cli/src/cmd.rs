//! The command line: `kubectl-ferrolb explain service|node|peer NAME`
//! (also run by `ferrolb-controller explain …`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::explain::{self, SCHEMA};
use crate::render;
use crate::world::{self, World};

/// Exit code when there is no verdict (bad arguments, unreadable input, no
/// such object).
pub const EXIT_ERROR: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-ferrolb",
    bin_name = "kubectl ferrolb",
    version,
    about = "FerroLB's kubectl plugin: why a Service has (or lacks) an IP, and how it is announced"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Explain a Service's verdict (exit 0 announced, 1 pending, 2 assigned
    /// but not announced, 3 error), what a node announces, or a BGP peer's
    /// sessions.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(subcommand)]
    pub what: What,
    /// Read a standalone directory (the one `ferrolb-controller --standalone
    /// DIR` and `ferrolb-speaker --standalone DIR` use) instead of a cluster.
    #[arg(long, value_name = "DIR", global = true)]
    pub standalone: Option<PathBuf>,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the
    /// in-cluster configuration).
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        conflicts_with = "standalone"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of FerroLB's configuration objects.
    #[arg(long, value_name = "NS", global = true, default_value = ferrolb_config::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The loadBalancerClass the controller and speakers serve (their
    /// --lb-class); without it, Services without a class.
    #[arg(long, value_name = "NAME", global = true)]
    pub lb_class: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text", global = true)]
    pub output: Output,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// Why a Service is pending, assigned but not announced, or announced.
    Service {
        /// NAMESPACE/NAME (a NAME alone is in namespace default).
        name: String,
    },
    /// What a node announces, to which peers, and why not the rest.
    Node { name: String },
    /// A BGPPeer: each node's session state, last error and prefixes sent.
    Peer { name: String },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// The JSON printed instead of an explanation when there is none.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDoc<'a> {
    schema: &'static str,
    kind: &'static str,
    error: &'a str,
    exit_code: u8,
}

/// Parses the arguments (`args[0]` is the program) and runs; exit code 3
/// for usage errors (clap's own 2 would read as a verdict).
pub fn main_with(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    match Cli::try_parse_from(args) {
        Ok(cli) => match cli.command {
            Command::Explain(a) => run_explain(&a),
        },
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}

fn read_world(args: &ExplainArgs) -> Result<World, String> {
    if let Some(dir) = &args.standalone {
        return world::from_directory(dir, args.lb_class.as_deref());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = ferrolb_controller::cluster::client(args.kubeconfig.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        world::from_cluster(client, &args.namespace, args.lb_class.as_deref()).await
    })
}

/// Runs `explain`; the exit code is the verdict's (0 for node and peer), 3
/// when there is none.
pub fn run_explain(args: &ExplainArgs) -> ExitCode {
    let result = read_world(args).and_then(|world| match &args.what {
        What::Service { name } => {
            let (ns, name) = name.split_once('/').unwrap_or(("default", name));
            explain::explain_service(&world, ns, name).map(|e| {
                let code = e.exit_code;
                let text = match args.output {
                    Output::Text => render::service(&e),
                    Output::Json => json(&e),
                };
                (text, code)
            })
        }
        What::Node { name } => explain::explain_node(&world, name).map(|e| {
            let text = match args.output {
                Output::Text => render::node(&e),
                Output::Json => json(&e),
            };
            (text, 0)
        }),
        What::Peer { name } => explain::explain_peer(&world, name).map(|e| {
            let text = match args.output {
                Output::Text => render::peer(&e),
                Output::Json => json(&e),
            };
            (text, 0)
        }),
    });
    match result {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(e) => {
            match args.output {
                Output::Text => eprintln!("error: {e}"),
                Output::Json => print!(
                    "{}",
                    json(&ErrorDoc {
                        schema: SCHEMA,
                        kind: "Error",
                        error: &e,
                        exit_code: EXIT_ERROR,
                    })
                ),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn json(v: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    s.push('\n');
    s
}
