//! The command line: `kubectl-ferrolb explain service|node|peer NAME` and
//! `kubectl-ferrolb plan -f NEW.yaml` (also run by `ferrolb-controller
//! explain …` and `ferrolb-controller plan …`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::explain::{self, SCHEMA};
use crate::plan::{self, FailOn, Proposal};
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
    /// What applying manifests would change, without applying them: which
    /// Services would get, lose or change an IP, which pools would be
    /// exhausted or freed, which announcements would move. Exit 0 when no IP
    /// a Service holds would change or be lost, 4 when one would, 5 when the
    /// proposal has new configuration errors, 3 on error.
    Plan(PlanArgs),
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Manifests to apply over the current state (files or directories;
    /// each object replaces the one of the same kind, namespace and name,
    /// or is added, as `kubectl apply` does). Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Remove an object: KIND/NAMESPACE/NAME or KIND/NAME (FerroLB's kinds
    /// in --namespace, Services in default; Node/NAME). Repeatable.
    #[arg(long, value_name = "KIND/[NS/]NAME")]
    pub delete: Vec<String>,
    /// Also remove every FerroLB configuration object (IPAddressPool,
    /// L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile, Community)
    /// that the files do not hold.
    #[arg(long, requires = "files")]
    pub prune: bool,
    /// When to exit 4: `ip-change` (an IP a Service holds would change or
    /// be lost), `any-change` (anything would change), `none` (never; nor 5).
    #[arg(long, value_enum, default_value = "ip-change")]
    pub fail_on: FailOn,
    /// Read a standalone directory instead of a cluster.
    #[arg(long, value_name = "DIR")]
    pub standalone: Option<PathBuf>,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the
    /// in-cluster configuration).
    #[arg(long, value_name = "FILE", conflicts_with = "standalone")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of FerroLB's configuration objects.
    #[arg(long, value_name = "NS", default_value = ferrolb_config::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The loadBalancerClass the controller and speakers serve.
    #[arg(long, value_name = "NAME")]
    pub lb_class: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
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
            Command::Plan(a) => run_plan(&a),
        },
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}

fn read_world(args: &ExplainArgs) -> Result<World, String> {
    read_world_from(
        args.standalone.as_ref(),
        args.kubeconfig.as_ref(),
        &args.namespace,
        args.lb_class.as_deref(),
    )
}

fn read_world_from(
    standalone: Option<&PathBuf>,
    kubeconfig: Option<&PathBuf>,
    namespace: &str,
    lb_class: Option<&str>,
) -> Result<World, String> {
    if let Some(dir) = standalone {
        return world::from_directory(dir, lb_class);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = ferrolb_controller::cluster::client(kubeconfig)
            .await
            .map_err(|e| e.to_string())?;
        world::from_cluster(client, namespace, lb_class).await
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
    finish(result, args.output, SCHEMA)
}

/// Prints the text or the error (as JSON with `-o json`) and exits.
fn finish(result: Result<(String, u8), String>, output: Output, schema: &'static str) -> ExitCode {
    match result {
        Ok((text, code)) => {
            print!("{text}");
            ExitCode::from(code)
        }
        Err(e) => {
            match output {
                Output::Text => eprintln!("error: {e}"),
                Output::Json => print!(
                    "{}",
                    json(&ErrorDoc {
                        schema,
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

/// Runs `plan`: exit 0 (nothing to fail on), 4 (an IP a Service holds
/// would change or be lost; with `--fail-on any-change`, anything would
/// change), 5 (the proposal has new configuration errors), 3 (no plan).
pub fn run_plan(args: &PlanArgs) -> ExitCode {
    let proposal = Proposal {
        files: args.files.clone(),
        delete: args.delete.clone(),
        prune: args.prune,
    };
    let result = read_world_from(
        args.standalone.as_ref(),
        args.kubeconfig.as_ref(),
        &args.namespace,
        args.lb_class.as_deref(),
    )
    .and_then(|world| plan::plan(&world, &proposal, args.fail_on))
    .map(|p| {
        let text = match args.output {
            Output::Text => render::plan(&p),
            Output::Json => json(&p),
        };
        (text, p.exit_code)
    });
    finish(result, args.output, plan::SCHEMA)
}

fn json(v: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    s.push('\n');
    s
}
