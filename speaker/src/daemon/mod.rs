//! The speaker daemon: reads its inputs, asks [`desired::decide`] what this
//! node announces, and applies the difference to the layer-2 and BGP
//! adapters; writes its status; on SIGTERM withdraws everything (Cease to
//! every peer) and stops answering ARP/NDP.
//!
//! Standalone mode (`--standalone DIR`): the configuration, Nodes,
//! EndpointSlices and Secrets come from the directory's manifests, the
//! assigned IPs from `DIR/status/services.yaml` (written by
//! `ferrolb-controller --standalone DIR`), and the status goes to
//! `DIR/status/speaker-NODE.yaml`. The files are checked every
//! [`POLL`]; an edit takes effect at the next check.

pub mod bgp;
pub mod l2;
pub mod standalone;
pub mod status;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::desired::{self, Desired, Inputs};

/// How often the standalone files are checked for changes.
pub const POLL: Duration = Duration::from_millis(200);

/// Arguments of the daemon (the command without a subcommand).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Run from a directory of manifests instead of a cluster: the
    /// controller's standalone directory (assigned IPs from
    /// DIR/status/services.yaml; status to DIR/status/speaker-NODE.yaml).
    #[arg(long, value_name = "DIR")]
    pub standalone: Option<PathBuf>,
    /// This node's name (the Node object's name).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node: Option<String>,
    /// Only announce Services whose spec.loadBalancerClass is NAME (without
    /// it, only Services without a class), like the controller's flag.
    #[arg(long, value_name = "NAME")]
    pub lb_class: Option<String>,
}

/// Runs the daemon until SIGTERM/SIGINT; 0 after a clean stop.
pub fn run(args: Args) -> ExitCode {
    let Some(node) = args.node.clone().filter(|n| !n.is_empty()) else {
        eprintln!(
            "ferrolb-speaker: --node NAME (or $NODE_NAME) is needed: the name of the Node this speaker runs on"
        );
        return ExitCode::from(2);
    };
    let Some(dir) = args.standalone.clone() else {
        eprintln!(
            "ferrolb-speaker: cluster mode is not implemented yet; run with --standalone DIR (see README)"
        );
        return ExitCode::from(2);
    };
    crate::run_probe("daemon", standalone_main(dir, node, args.lb_class))
}

/// What the daemon keeps between rounds.
struct Daemon {
    node: String,
    lb_class: Option<String>,
    l2: l2::L2,
    bgp: bgp::Bgp,
    desired: Desired,
    /// The reasons logged last, so that a reason is logged when it changes.
    logged: BTreeSet<String>,
}

impl Daemon {
    async fn round(&mut self, inputs: &standalone::Snapshot) {
        let desired = desired::decide(Inputs {
            config: &inputs.config,
            services: &inputs.services,
            members: None,
            node: &self.node,
            lb_class: self.lb_class.as_deref(),
        });
        self.log_reasons(&desired);
        self.l2.apply(&desired.l2).await;
        let node = inputs
            .config
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node.as_str()));
        self.bgp.apply(&inputs.config, node, &desired).await;
        self.desired = desired;
    }

    fn log_reasons(&mut self, d: &Desired) {
        let mut now = BTreeSet::new();
        if let Some(r) = &d.node_excluded {
            now.insert(format!("node {}: announcing nothing: {r}", self.node));
        }
        for s in &d.services {
            for ip in &s.ips {
                for r in &ip.reasons {
                    now.insert(format!("Service {}: {r}", s.key));
                }
            }
        }
        for line in now.difference(&self.logged) {
            tracing::info!("{line}");
        }
        self.logged = now;
    }
}

async fn standalone_main(dir: PathBuf, node: String, lb_class: Option<String>) -> ExitCode {
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ferrolb-speaker: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut source = standalone::Source::new(&dir);
    let mut daemon = Daemon {
        node: node.clone(),
        lb_class,
        l2: l2::L2::default(),
        bgp: bgp::Bgp::default(),
        desired: Desired::default(),
        logged: BTreeSet::new(),
    };
    tracing::info!(
        "ferrolb-speaker {} starting on node {node}, standalone over {}",
        env!("CARGO_PKG_VERSION"),
        dir.display()
    );
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshot: Option<standalone::Snapshot> = None;
    let mut dirty = true;
    let signal_name = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            _ = tick.tick() => {
                if let Some(next) = source.poll() {
                    daemon.round(&next).await;
                    snapshot = Some(next);
                    dirty = true;
                }
                if dirty {
                    if let Some(snap) = &snapshot {
                        status::write(&dir, &daemon_status(&daemon, snap));
                    }
                    dirty = false;
                }
            }
            ev = daemon.l2.next() => {
                if let Some(ev) = ev {
                    dirty |= daemon.l2.handle(ev);
                }
            }
            ev = daemon.bgp.next() => {
                if let Some(ev) = ev {
                    dirty |= daemon.bgp.handle(ev);
                }
            }
        }
    };
    tracing::info!("{signal_name}: withdrawing every announcement");
    daemon.bgp.stop_all("speaker stopping").await;
    daemon.l2.shutdown().await;
    if let Some(snap) = &snapshot {
        daemon.desired = Desired::default();
        status::write(&dir, &daemon_status(&daemon, snap));
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn daemon_status<'a>(d: &'a Daemon, snap: &'a standalone::Snapshot) -> status::View<'a> {
    status::View {
        node: &d.node,
        desired: &d.desired,
        l2: &d.l2,
        peers: d.bgp.states(),
        peer_errors: &d.bgp.errors,
        problems: &snap.problems,
        membership: "not running: liveness from Node readiness",
    }
}
