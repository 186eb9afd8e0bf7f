//! `ferrolb-controller`: assigns external IPs to LoadBalancer Services.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrolb-controller",
    version,
    about = "FerroLB controller: external IPs for LoadBalancer Services",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Run without a cluster over a directory of Kubernetes-style YAML; results go to DIR/status/.
    #[arg(long, value_name = "DIR")]
    standalone: Option<PathBuf>,
    /// With --standalone: allocate once, write DIR/status/ and exit.
    #[arg(long, requires = "standalone")]
    once: bool,
    /// Only handle Services whose spec.loadBalancerClass is NAME (classless ones are left alone).
    #[arg(long, value_name = "NAME")]
    lb_class: Option<String>,
    /// Kubeconfig file (default: in-cluster configuration, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of FerroLB's configuration objects and of the leader Lease.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = ferrolb_config::DEFAULT_NAMESPACE)]
    namespace: String,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_addr: std::net::SocketAddr,
    /// This replica's identity in the leader Lease (default: $POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Name of the leader-election Lease [default: ferrolb-controller; with --lb-class,
    /// ferrolb-controller-<class>, e.g. ferrolb-controller-example-com-lb for example.com/lb].
    /// Controllers of different classes need different Leases: they all lead at once.
    #[arg(long, value_name = "NAME")]
    lease_name: Option<String>,
    /// Seconds a leader's Lease holds without renewal before another replica takes over.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
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
    /// Why a Service is pending, assigned but not announced, or announced (exit 0
    /// announced, 1 pending, 2 assigned but not announced, 3 error); what a node
    /// or a BGP peer announces. Runs `kubectl-ferrolb explain ARGS` (installed
    /// beside this binary, or on the PATH): see `kubectl-ferrolb explain --help`.
    #[command(disable_help_flag = true)]
    Explain {
        /// `service NS/NAME`, `node NAME` or `peer NAME`, with --standalone DIR
        /// (or --kubeconfig F), -o json, --lb-class NAME.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// What applying manifests would change, without applying them (exit 0
    /// no IP a Service holds changes, 4 one would change or be lost, 5 new
    /// configuration errors, 3 error). Runs `kubectl-ferrolb plan ARGS`: see
    /// `kubectl-ferrolb plan --help`.
    #[command(disable_help_flag = true)]
    Plan {
        /// `-f NEW.yaml` (repeatable), --delete KIND/[NS/]NAME, --prune,
        /// --standalone DIR (or --kubeconfig F), -o json, --fail-on.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run_cluster(args: RunArgs) -> ExitCode {
    let lease = std::time::Duration::from_secs(args.lease_duration.max(3));
    let identity = args.identity.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("ferrolb-controller-{}", std::process::id()))
    });
    let lease_name = args.lease_name.unwrap_or_else(|| {
        ferrolb_controller::cluster::lease::default_lease_name(args.lb_class.as_deref())
    });
    let release = (
        args.kubeconfig.clone(),
        args.namespace.clone(),
        lease_name.clone(),
        identity.clone(),
    );
    let opts = ferrolb_controller::cluster::Options {
        kubeconfig: args.kubeconfig,
        namespace: args.namespace,
        lb_class: args.lb_class,
        metrics_addr: args.metrics_addr,
        identity,
        lease_name,
        timing: ferrolb_controller::leader::Timing {
            lease_duration: lease,
            renew_deadline: lease * 2 / 3,
            retry_period: (lease / 7).max(std::time::Duration::from_millis(500)),
        },
        resync: std::time::Duration::from_secs(60),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolb-controller: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        tokio::select! {
            result = ferrolb_controller::cluster::run(opts) => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ferrolb-controller: {e}");
                    ExitCode::from(1)
                }
            },
            _ = shutdown_signal() => {
                let (kubeconfig, namespace, lease_name, identity) = release;
                if let Ok(client) = ferrolb_controller::cluster::client(kubeconfig.as_ref()).await {
                    let api = kube::Api::namespaced(client, &namespace);
                    match ferrolb_controller::cluster::lease::release(&api, &lease_name, &identity).await {
                        Ok(true) => tracing::info!("released the leader Lease"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot release the leader Lease"),
                    }
                }
                tracing::info!("stopping");
                ExitCode::SUCCESS
            }
        }
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> ExitCode {
    ferrolb_controller::memory::tune_malloc();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crds) => {
            print!("{}", ferrolb_config::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Some(Command::Validate { paths, json }) => ferrolb_controller::cli::validate(&paths, json),
        Some(Command::Migrate { file }) => ferrolb_controller::cli::migrate(&file),
        Some(Command::Explain { args }) => ferrolb_controller::cli::explain(&args),
        Some(Command::Plan { args }) => ferrolb_controller::cli::plan(&args),
        None => {
            init_logging();
            let Some(dir) = cli.run.standalone else {
                return run_cluster(cli.run);
            };
            let mut standalone =
                ferrolb_controller::standalone::Standalone::new(&dir, cli.run.lb_class.as_deref());
            let result = if cli.run.once {
                standalone.run_once().map(|_| ())
            } else {
                standalone.run_forever()
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ferrolb-controller: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
