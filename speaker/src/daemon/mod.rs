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
pub mod cluster;
pub mod l2;
pub mod metrics;
pub mod standalone;
pub mod status;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::desired::{self, Desired, Inputs};
use crate::membership::Timing;
use crate::membership::io::Membership;

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
    /// Cluster mode: the kubeconfig to use (default: in-cluster, then
    /// $KUBECONFIG / ~/.kube/config).
    #[arg(long, value_name = "FILE", conflicts_with = "standalone")]
    pub kubeconfig: Option<PathBuf>,
    /// Cluster mode: the namespace of FerroLB's objects.
    #[arg(long, default_value = ferrolb_config::DEFAULT_NAMESPACE, value_name = "NS")]
    pub namespace: String,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472", value_name = "ADDR")]
    pub metrics_addr: std::net::SocketAddr,
    /// UDP port of the speakers' membership, on each Node's InternalIP.
    #[arg(long, default_value_t = 7946, value_name = "PORT")]
    pub memberlist_port: u16,
    /// Secret (in ferrolb-system) whose `secretkey` key authenticates the
    /// membership; without it, layer-2 liveness comes from Node readiness.
    #[arg(long, default_value = "memberlist", value_name = "NAME")]
    pub memberlist_secret: String,
    /// Failure detection of the membership: `default` (probe every 200 ms,
    /// 80 ms round trip, 300 ms suspicion: a dead node's layer-2 IPs move
    /// within about 0.6 s) or `fast` (80/30/120 ms: about 0.3 s, 2.5 times
    /// the membership traffic; for LANs with round trips well under 30 ms).
    /// Every speaker of a cluster should use the same profile.
    #[arg(long, default_value = "default", value_name = "PROFILE", value_parser = ["default", "fast"])]
    pub membership_profile: String,
    /// Draining (SIGTERM, or the Node labelled ferrolb.io/drain=true): how
    /// long this node keeps answering for its layer-2 IPs after the other
    /// nodes took them over, and sends its BGP routes with the
    /// GRACEFUL_SHUTDOWN community (65535:0, RFC 8326; LOCAL_PREF 0 to iBGP
    /// peers) before it withdraws them. A Kubernetes duration; 0s drains
    /// at once. Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = ferrolb_config::duration::parse)]
    pub drain_wait: Duration,
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
        tracing::info!(
            "ferrolb-speaker {} starting on node {node}, watching the cluster (namespace {})",
            env!("CARGO_PKG_VERSION"),
            args.namespace
        );
        return crate::run_probe("daemon", async move {
            let client = match cluster::client(args.kubeconfig.as_ref()).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ferrolb-speaker: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = cluster::Options {
                kubeconfig: args.kubeconfig.clone(),
                namespace: args.namespace.clone(),
                node: node.clone(),
            };
            let source = cluster::ClusterSource::start(client, &opts).await;
            main_loop(source, node, args).await
        });
    };
    tracing::info!(
        "ferrolb-speaker {} starting on node {node}, standalone over {}",
        env!("CARGO_PKG_VERSION"),
        dir.display()
    );
    crate::run_probe(
        "daemon",
        main_loop(standalone::Source::new(&dir), node.clone(), args),
    )
}

/// One reading of the inputs.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The valid part of the configuration, with Nodes, EndpointSlices and
    /// Secrets.
    pub config: ferrolb_config::Config,
    /// The LoadBalancer Services with their assigned IPs.
    pub services: Vec<crate::desired::LbService>,
    /// Every problem found (configuration and reading), for status and logs.
    pub problems: Vec<ferrolb_config::Problem>,
}

/// Keeps of a Service only what the decision and the status read (its
/// name, namespace, labels, uid, type, class, traffic policy, families
/// and status): Services are many.
pub fn strip_service(svc: &mut k8s_openapi::api::core::v1::Service) {
    let meta = &mut svc.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    if let Some(spec) = &mut svc.spec {
        spec.ports = None;
        spec.selector = None;
        spec.cluster_ips = None;
        spec.cluster_ip = None;
        spec.session_affinity_config = None;
    }
}

/// What the daemon keeps between rounds.
struct Daemon {
    node: String,
    args: Args,
    membership: Option<Membership>,
    /// How membership stands, for logs and status.
    membership_note: String,
    l2: l2::L2,
    bgp: bgp::Bgp,
    /// Shared with the published [`status::Report`].
    desired: std::sync::Arc<Desired>,
    /// The reasons logged last, so that a reason is logged when it changes.
    logged: BTreeSet<String>,
}

impl Daemon {
    /// The membership's timings for `--membership-profile`.
    fn timing(&self) -> Timing {
        match self.args.membership_profile.as_str() {
            "fast" => Timing::fast(),
            _ => Timing::default(),
        }
    }

    /// Starts, restarts or stops the membership to match the snapshot
    /// (key from the Secret, address from this Node), and gives it the
    /// other nodes' addresses.
    async fn ensure_membership(&mut self, snap: &Snapshot) {
        let wanted = membership_settings(snap, &self.node, &self.args);
        match wanted {
            Err(why) => {
                if let Some(m) = self.membership.take() {
                    m.leave().await;
                }
                let note =
                    format!("not running ({why}): layer-2 liveness from Node readiness only");
                if note != self.membership_note {
                    tracing::warn!("membership {note}");
                }
                self.membership_note = note;
            }
            Ok((addr, key, peers)) => {
                let stale = self
                    .membership
                    .as_ref()
                    .is_some_and(|m| !m.matches(addr, &key));
                if stale && let Some(m) = self.membership.take() {
                    m.leave().await;
                }
                if self.membership.is_none() {
                    match Membership::start(&self.node, addr, &key, self.timing()).await {
                        Ok(m) => {
                            self.membership = Some(m);
                            self.membership_note = format!(
                                "running on UDP {addr} ({} profile)",
                                self.args.membership_profile
                            );
                        }
                        Err(e) => {
                            let note = format!(
                                "not running ({e}): layer-2 liveness from Node readiness only"
                            );
                            if note != self.membership_note {
                                tracing::warn!("membership {note}");
                            }
                            self.membership_note = note;
                        }
                    }
                }
                if let Some(m) = &self.membership {
                    m.set_peers(peers);
                }
            }
        }
    }

    async fn round(&mut self, inputs: &Snapshot) {
        let view = self.membership.as_ref().map(|m| m.view.borrow().clone());
        let empty = BTreeSet::new();
        let members = match &view {
            None => None,
            Some(v) if v.joined => Some(&v.live),
            // Joining: answer for nothing until the others are heard.
            Some(_) => Some(&empty),
        };
        let desired = desired::decide(Inputs {
            config: &inputs.config,
            services: &inputs.services,
            members,
            node: &self.node,
            lb_class: self.args.lb_class.as_deref(),
        });
        self.log_reasons(&desired);
        // Draining: IPs the other nodes took over are answered a while
        // longer (make-before-break).
        let linger = desired.draining.as_ref().map(|_| self.args.drain_wait);
        self.l2.apply(&desired.l2, linger).await;
        let node = inputs
            .config
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(self.node.as_str()));
        self.bgp.apply(&inputs.config, node, &desired).await;
        self.desired = std::sync::Arc::new(desired);
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

/// Where the daemon's inputs come from and where its status goes.
pub trait Source {
    /// Waits for the next check of the inputs; a new snapshot when they
    /// changed. Cancel-safe: dropped before it returns, nothing is lost.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Snapshot>>;
    /// Publishes the status (without blocking on the network).
    fn publish(&mut self, report: std::sync::Arc<status::Report>);
}

/// Runs the daemon over `source` until SIGTERM/SIGINT.
pub async fn main_loop(mut source: impl Source, node: String, args: Args) -> ExitCode {
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
    let drain_wait = args.drain_wait;
    let mut daemon = Daemon {
        node: node.clone(),
        args,
        membership: None,
        membership_note: "not started".into(),
        l2: l2::L2::default(),
        bgp: bgp::Bgp::default(),
        desired: Default::default(),
        logged: BTreeSet::new(),
    };
    daemon.bgp.drain_wait = drain_wait;
    let metrics = std::sync::Arc::new(metrics::Metrics::default());
    let health = std::sync::Arc::new(ferrolb_controller::cluster::metrics::Health::default());
    metrics::serve(daemon.args.metrics_addr, metrics.clone(), health.clone());
    let mut publish = tokio::time::interval(POLL);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshot: Option<Snapshot> = None;
    let mut dirty = true;
    let signal_name = loop {
        let linger = daemon.l2.linger_deadline();
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            next = source.next() => {
                if let Some(next) = next {
                    daemon.ensure_membership(&next).await;
                    daemon.round(&next).await;
                    metrics.rounds.inc();
                    metrics::set_ready(&health);
                    snapshot = Some(next);
                    dirty = true;
                }
            }
            _ = publish.tick() => {
                if dirty && let Some(snap) = &snapshot {
                    source.publish(report(&daemon, snap));
                    // The round's tables are freed.
                    ferrolb_controller::memory::release_free_memory();
                    let view = daemon.membership.as_ref().map(|m| m.view.borrow().clone());
                    let bgp_ips = daemon
                        .desired
                        .services
                        .iter()
                        .flat_map(|s| &s.ips)
                        .filter(|d| !d.bgp.is_empty())
                        .count();
                    metrics.update(&daemon.bgp.states(), daemon.desired.l2.len(), bgp_ips, view.as_ref());
                    dirty = false;
                }
            }
            _ = membership_changed(&mut daemon.membership) => {
                if let Some(snap) = &snapshot {
                    daemon.round(snap).await;
                    metrics.rounds.inc();
                }
                dirty = true;
            }
            ev = daemon.l2.next() => {
                if let Some(ev) = ev {
                    metrics.observe_l2(&ev);
                    dirty |= daemon.l2.handle(ev);
                }
            }
            () = linger_over(linger) => {
                if let Some(snap) = &snapshot {
                    daemon.round(snap).await;
                    metrics.rounds.inc();
                }
                dirty = true;
            }
            ev = daemon.bgp.next() => {
                match ev {
                    // An unnumbered peer's address was found or changed, or
                    // the drain wait is over: the sessions are set up again.
                    Some(bgp::BgpInput::Discovered(why)) => {
                        tracing::debug!("{why}: setting the sessions up again");
                        if let Some(snap) = &snapshot {
                            daemon.round(snap).await;
                            metrics.rounds.inc();
                        }
                        dirty = true;
                    }
                    Some(ev) => dirty |= daemon.bgp.handle(ev),
                    None => {}
                }
            }
        }
    };
    // Make-before-break: leaving the membership makes the other nodes take
    // the layer-2 IPs over (with gratuitous ARP / unsolicited NA) at once,
    // while this node keeps answering; the BGP routes go with the drain
    // community; only after --drain-wait does everything stop.
    if let Some(m) = daemon.membership.take() {
        m.leave().await;
    }
    let wait = daemon.args.drain_wait;
    if !wait.is_zero() {
        tracing::info!(
            "{signal_name}: draining for {wait:?}: the other nodes take the layer-2 IPs over while this one still answers; BGP routes go with GRACEFUL_SHUTDOWN (65535:0); a second signal stops at once"
        );
        daemon.bgp.stopping = true;
        if let Some(snap) = &snapshot {
            daemon.round(snap).await;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                ev = daemon.bgp.next() => {
                    if let Some(ev) = ev
                        && !matches!(ev, bgp::BgpInput::Discovered(_))
                    {
                        daemon.bgp.handle(ev);
                    }
                }
            }
        }
    }
    tracing::info!("{signal_name}: withdrawing every announcement");
    daemon.bgp.stop_all("speaker stopping").await;
    daemon.l2.shutdown().await;
    if let Some(snap) = &snapshot {
        daemon.desired = Default::default();
        source.publish(report(&daemon, snap));
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The status to publish: the decision is shared, not copied.
fn report(d: &Daemon, snap: &Snapshot) -> std::sync::Arc<status::Report> {
    std::sync::Arc::new(status::Report {
        node: d.node.clone(),
        desired: d.desired.clone(),
        interfaces: d.l2.interfaces.clone(),
        l2_error: d.l2.error.clone(),
        conflicts: d.l2.conflicts.clone(),
        peers: d.bgp.states(),
        peer_errors: d.bgp.errors.clone(),
        problems: snap.problems.iter().map(ToString::to_string).collect(),
        membership: d.membership_note.clone(),
    })
}

/// Waits until `deadline` (forever without one).
async fn linger_over(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Waits until the membership's view changes (forever without one).
async fn membership_changed(m: &mut Option<Membership>) {
    match m {
        Some(m) => {
            if m.view.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The key of the membership Secret (`secretkey` in `data` or `stringData`).
fn membership_key(snap: &Snapshot, name: &str) -> Result<Vec<u8>, String> {
    let secret = snap
        .config
        .secrets
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref() == Some(ferrolb_config::DEFAULT_NAMESPACE)
        })
        .ok_or_else(|| format!("no Secret {}/{name}", ferrolb_config::DEFAULT_NAMESPACE))?;
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get("secretkey"))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get("secretkey"))
                .map(|s| s.as_bytes().to_vec())
        })
        .ok_or_else(|| {
            format!(
                "Secret {}/{name} has no \"secretkey\" key",
                ferrolb_config::DEFAULT_NAMESPACE
            )
        })?;
    if key.len() < 16 {
        return Err(format!(
            "Secret {}/{name}: secretkey is {} bytes; at least 16 are needed",
            ferrolb_config::DEFAULT_NAMESPACE,
            key.len()
        ));
    }
    Ok(key)
}

/// A Node's InternalIP, IPv4 first.
fn internal_ip(node: &k8s_openapi::api::core::v1::Node) -> Option<std::net::IpAddr> {
    let addrs = node.status.as_ref()?.addresses.as_ref()?;
    let ips: Vec<std::net::IpAddr> = addrs
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied()
}

type MembershipSettings = (
    std::net::SocketAddr,
    Vec<u8>,
    std::collections::BTreeMap<String, std::net::SocketAddr>,
);

/// Where this node's membership listens, its key and the other nodes.
fn membership_settings(
    snap: &Snapshot,
    node: &str,
    args: &Args,
) -> Result<MembershipSettings, String> {
    let key = membership_key(snap, &args.memberlist_secret)?;
    let me = snap
        .config
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .ok_or_else(|| format!("no Node object named {node}"))?;
    let ip = internal_ip(me).ok_or_else(|| format!("Node {node} has no InternalIP"))?;
    let peers = snap
        .config
        .nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            (name != node)
                .then(|| {
                    internal_ip(n)
                        .map(|ip| (name, std::net::SocketAddr::new(ip, args.memberlist_port)))
                })
                .flatten()
        })
        .collect();
    Ok((
        std::net::SocketAddr::new(ip, args.memberlist_port),
        key,
        peers,
    ))
}
