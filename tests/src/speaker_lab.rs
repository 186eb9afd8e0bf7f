//! A three-node lab for the speaker daemon in standalone mode: the
//! controller (`ferrolb-controller --standalone DIR --once`) assigns the
//! IPs, then one `ferrolb-speaker --standalone DIR --node NAME` runs in each
//! node namespace, with a client and (optionally) a router on the same
//! bridge.
//!
//! ```text
//!   [router] eth0 198.51.100.1/24 2001:db8::1/64  GoBGP or FRR, AS 64513 (or nothing)
//!   [client] eth0 198.51.100.2/24 2001:db8::2/64
//!   [node1]  eth0 198.51.100.11   2001:db8::11     speaker, AS 64512
//!   [node2]  eth0 198.51.100.12   2001:db8::12     speaker
//!   [node3]  eth0 198.51.100.13   2001:db8::13     speaker
//!         \________ br0 in its own namespace ________/
//! ```
//!
//! Two parts, because FRR's handle ([`Frr`]) borrows the router's
//! namespace:
//!
//! - [`Network`]: the namespaces and their addresses (each node with
//!   `arp_ignore=1`/`arp_announce=2`, so its kernel never answers ARP for
//!   the Service IPs it holds on `lo`);
//! - [`SpeakerLab`]: over a [`Network`], the test's directory (the
//!   configuration and Services it chooses, and `nodes.yaml` from
//!   [`nodes_yaml`] unless it writes its own), the controller run, every
//!   assigned IP on each node's `lo` with a TCP [`Greeter`] that answers
//!   with the node's name (so the client can tell who answered), the
//!   [`Router`] the test chooses and the three speakers.
//!
//! Readers of the directory: [`assigned`] (the controller's
//! `status/services.yaml`), [`speaker_status`] and [`status_announces_l2`]
//! (each speaker's `status/speaker-NODE.yaml`). Every wait is bounded
//! ([`SETTLE`]); everything stops on drop (speakers, router, greeters,
//! then the namespaces). Addresses are documentation ones only
//! (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), inside namespaces the
//! lab creates.
//!
//! The cluster-mode lab ([`crate::cluster_lab`]) reuses [`Network`] (with
//! one more host, [`Network::host`]), [`Speaker`] ([`Speaker::spawn`]) and
//! the router ([`LabRouter`]).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bgp::{GoBgp, GoBgpNeighbor, gobgp_next_hops};
use crate::netns::{Greeter, Host, Lab, Netns, tcp_fetch};
use crate::routers::{BfdTimers, Frr, FrrConfig, FrrNeighbor};
use crate::speaker::{controller_binary, speaker_binary};

/// The tools every speaker lab needs, for [`crate::require`] (add the
/// router's: [`GOBGP_TOOLS`], [`Frr::TOOLS`]).
pub const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
];

/// [`crate::require`] of [`TOOLS`] and `extra` (e.g. the router's).
pub fn require(extra: &[(&'static str, &'static str)]) -> bool {
    let tools: Vec<(&str, &str)> = TOOLS.iter().chain(extra).copied().collect();
    crate::require(&tools)
}

/// The namespaces, when root, [`TOOLS`] and `extra` are there; else
/// `None` after `SKIPPED: …` (a failure under `CI`).
pub fn network(extra: &[(&'static str, &'static str)]) -> Option<Network> {
    require(extra).then(Network::new)
}

/// What [`Router::GoBgp`] needs.
pub const GOBGP_TOOLS: &[(&str, &str)] = &[("gobgpd", "gobgpd"), ("gobgp", "gobgpd")];

/// The port every [`Greeter`] listens on, on every assigned IP.
pub const TCP_PORT: u16 = 8080;
/// Bound of every wait for the daemons to converge.
pub const SETTLE: Duration = Duration::from_secs(15);
/// The nodes' AS (`myASN` of the BGPPeers the tests write).
pub const NODE_ASN: u32 = 64512;
/// The router's AS.
pub const ROUTER_ASN: u32 = 64513;
/// The router's IPv4 address (the BGPPeers' `peerAddress`).
pub const ROUTER_V4: &str = "198.51.100.1";
/// The router's IPv6 address.
pub const ROUTER_V6: &str = "2001:db8::1";
/// The router's MAC.
pub const ROUTER_MAC: &str = "02:f1:0c:00:00:01";
/// The client's IPv4 address.
pub const CLIENT_V4: &str = "198.51.100.2";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "2001:db8::2";
/// The client's MAC.
pub const CLIENT_MAC: &str = "02:f1:0c:00:00:02";

/// One node of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its Node name (the speaker's `--node`).
    pub name: &'static str,
    /// The MAC of its `eth0`.
    pub mac: &'static str,
    /// Its IPv4 address (InternalIP, BGP source).
    pub v4: &'static str,
    /// Its IPv6 address (InternalIP).
    pub v6: &'static str,
}

/// The three nodes.
pub const NODES: [NodeSpec; 3] = [
    NodeSpec {
        name: "node1",
        mac: "02:f1:0c:00:00:11",
        v4: "198.51.100.11",
        v6: "2001:db8::11",
    },
    NodeSpec {
        name: "node2",
        mac: "02:f1:0c:00:00:12",
        v4: "198.51.100.12",
        v6: "2001:db8::12",
    },
    NodeSpec {
        name: "node3",
        mac: "02:f1:0c:00:00:13",
        v4: "198.51.100.13",
        v6: "2001:db8::13",
    },
];

/// The Node objects of [`NODES`] (InternalIPs of both families), `Ready`
/// `True` except for the names in `not_ready`.
pub fn nodes_yaml(not_ready: &[&str]) -> String {
    NODES
        .iter()
        .map(|n| {
            let ready = if not_ready.contains(&n.name) {
                "False"
            } else {
                "True"
            };
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {}}}\nstatus:\n  conditions: [{{type: Ready, status: \"{ready}\"}}]\n  addresses: [{{type: InternalIP, address: {}}}, {{type: InternalIP, address: \"{}\"}}]\n",
                n.name, n.v4, n.v6
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The router's view of the nodes as BGP neighbours: an FRR configuration
/// (AS [`ROUTER_ASN`], router ID [`ROUTER_V4`]) with every node's IPv4
/// address as an eBGP neighbour in AS [`NODE_ASN`], with BFD and these
/// timers when `bfd` is given.
pub fn frr_config(bfd: Option<BfdTimers>) -> FrrConfig {
    let neighbors = NODES
        .iter()
        .map(|n| {
            let mut neighbor = FrrNeighbor::new(n.v4, NODE_ASN);
            neighbor.bfd = bfd;
            neighbor
        })
        .collect();
    FrrConfig::new(ROUTER_ASN, ROUTER_V4, neighbors)
}

/// Adds `addr` (with its prefix length) to `dev` in `ns`; IPv6 without
/// duplicate address detection.
pub fn add_addr(ns: &Netns, dev: &str, addr: &str) {
    let mut args = vec!["addr", "add", addr, "dev", dev];
    if addr.contains(':') {
        args.push("nodad");
    }
    ns.ip(&args);
}

// ---------------------------------------------------------------- processes

/// A speaker process in a node namespace, its output in `DIR/speaker-NODE.log`
/// (`RUST_LOG=info`); killed on drop.
#[derive(Debug)]
pub struct Speaker {
    child: Option<Child>,
    log: PathBuf,
}

impl Speaker {
    /// Starts `ferrolb-speaker --standalone DIR --node NODE` in `ns`.
    pub fn start(ns: &Netns, dir: &Path, node: &str) -> Speaker {
        Speaker::start_with(ns, dir, node, &[])
    }

    /// [`start`](Self::start) with `extra` arguments after the others.
    pub fn start_with(ns: &Netns, dir: &Path, node: &str, extra: &[String]) -> Speaker {
        let mut args = vec!["--standalone", dir.to_str().expect("utf-8"), "--node", node];
        args.extend(extra.iter().map(String::as_str));
        Speaker::spawn(
            ns,
            &speaker_binary(),
            &args,
            dir.join(format!("speaker-{node}.log")),
        )
    }

    /// Starts `program ARGS` in `ns` (`RUST_LOG=info`, output to `log`):
    /// a speaker with other arguments (cluster mode), or the controller.
    pub fn spawn(ns: &Netns, program: &Path, args: &[&str], log: PathBuf) -> Speaker {
        let file = std::fs::File::create(&log).expect("daemon log");
        let child = ns
            .command(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Speaker {
            child: Some(child),
            log,
        }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9 (no goodbye: no Cease, no withdrawal, no membership leave).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (bounded: 10 s, then SIGKILL and panic).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "speaker did not stop within 10 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `ferrolb-controller --standalone DIR --once`; panics with its
/// stderr when it fails.
pub fn run_controller(dir: &Path) {
    let out = Command::new(controller_binary())
        .args(["--standalone", dir.to_str().expect("utf-8"), "--once"])
        .output()
        .expect("running ferrolb-controller");
    assert!(
        out.status.success(),
        "controller failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- readers

/// The documents of a multi-document YAML text (empty ones and a text
/// that does not parse give none).
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The IPs of every Service in the controller's `status/services.yaml`,
/// as `(name, ips)` in file order.
pub fn assignments(dir: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(dir.join("status/services.yaml")).expect("services.yaml");
    yaml_documents(&text)
        .iter()
        .filter(|d| d["kind"] == "Service")
        .map(|d| {
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ips = d["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                .collect();
            (name, ips)
        })
        .collect()
}

/// Service name → its assigned IPs, from `status/services.yaml` (panics
/// when the Service is not there).
pub fn assigned(dir: &Path, name: &str) -> Vec<String> {
    assignments(dir)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, ips)| ips)
        .unwrap_or_else(|| {
            panic!(
                "{name} not in services.yaml:\n{}",
                std::fs::read_to_string(dir.join("status/services.yaml")).unwrap_or_default()
            )
        })
}

/// The `status` of the `SpeakerStatus` document in a speaker's status
/// file text (`Null` when there is none).
pub fn speaker_status_of(text: &str) -> Value {
    yaml_documents(text)
        .into_iter()
        .find(|d| d["kind"] == "SpeakerStatus")
        .map(|mut d| d["status"].take())
        .unwrap_or(Value::Null)
}

/// The `status` of `DIR/status/speaker-NODE.yaml`'s `SpeakerStatus`
/// (`announced`, `notAnnounced`, `conflicts`, `membership`, …), `Null`
/// while there is none.
pub fn speaker_status(dir: &Path, node: &str) -> Value {
    let path = dir.join(format!("status/speaker-{node}.yaml"));
    speaker_status_of(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Whether a speaker status file (its text) lists `ip` as announced on
/// layer 2 by that node.
pub fn status_announces_l2(text: &str, ip: &str) -> bool {
    speaker_status_of(text)["announced"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["ip"] == ip && e["layer2"] == true))
}

// ---------------------------------------------------------------- client side

/// Runs `nft ARGS` in `ns` (with `stdin` as its input); panics with its
/// output when it fails.
pub fn nft(ns: &Netns, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning nft");
    let mut input = child.stdin.take().expect("nft stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("writing nft rules");
    drop(input);
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft {args:?} in {}: {}{}",
        ns.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One ping from `ns` to `ip` (1 s timeout).
pub fn ping(ns: &Netns, ip: &str) -> bool {
    let family = if ip.contains(':') { "-6" } else { "-4" };
    ns.exec(
        "ping",
        &[family, "-c", "1", "-W", "1", ip],
        Duration::from_secs(5),
    )
    .status
    .success()
}

/// Claims `ip` from `ns` with three gratuitous ARP requests on `eth0`
/// (sender IP = target IP = `ip`; Habets' arping: `-U` broadcasts, `-S`
/// sets the sender IP, without which it would be `ns`'s own), 4 s at
/// most; returns arping's stdout and stderr. Nobody answers those, so
/// the exit status is not checked.
pub fn gratuitous_arp(ns: &Netns, ip: &str) -> String {
    let out = ns.exec(
        "arping",
        &["-U", "-S", ip, "-c", "3", "-w", "4", "-i", "eth0", ip],
        Duration::from_secs(10),
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// What the greeter at `ip`:[`TCP_PORT`] says (the name of the node that
/// took the connection).
pub fn greeting(ns: &Netns, ip: &str) -> Result<String, String> {
    let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
    tcp_fetch(ns, addr, Duration::from_secs(3))
}

/// Waits until the neighbour entries of `client` (on `eth0`) for `ips`
/// all hold a MAC other than `old_mac`, polling every 2 ms (bounded by
/// [`SETTLE`]); returns the time it took and the new MACs.
pub fn wait_moved(
    client: &Netns,
    ips: &[String],
    old_mac: &str,
) -> Option<(Duration, Vec<String>)> {
    let start = Instant::now();
    while start.elapsed() < SETTLE {
        let macs: Vec<Option<String>> = ips.iter().map(|ip| client.neighbour(ip, "eth0")).collect();
        if macs
            .iter()
            .all(|m| m.as_deref().is_some_and(|m| m != old_mac))
        {
            return Some((start.elapsed(), macs.into_iter().flatten().collect()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

// ---------------------------------------------------------------- network

/// A node's namespace.
#[derive(Debug)]
pub struct Node {
    /// Which node.
    pub spec: NodeSpec,
    /// Its namespace and `eth0`.
    pub host: Host,
}

/// The namespaces of the lab: router, client and the three [`NODES`] on
/// one bridge, addressed as in the module's picture. Make one per
/// [`SpeakerLab`].
#[derive(Debug)]
pub struct Network {
    /// Where the router daemon runs (if any).
    pub router: Host,
    /// The client.
    pub client: Host,
    /// The nodes, in [`NODES`] order.
    pub nodes: Vec<Node>,
    // Dropped last: the bridge.
    _lab: Lab,
}

impl Network {
    /// Creates the namespaces and addresses (needs root: check with
    /// [`crate::require`] first).
    pub fn new() -> Network {
        let lab = Lab::new();
        let router = lab.host("router", ROUTER_MAC);
        add_addr(&router.ns, "eth0", &format!("{ROUTER_V4}/24"));
        add_addr(&router.ns, "eth0", &format!("{ROUTER_V6}/64"));
        let client = lab.host("client", CLIENT_MAC);
        add_addr(&client.ns, "eth0", &format!("{CLIENT_V4}/24"));
        add_addr(&client.ns, "eth0", &format!("{CLIENT_V6}/64"));
        let nodes = NODES
            .iter()
            .map(|spec| {
                let host = lab.host(spec.name, spec.mac);
                let ns = &host.ns;
                ns.sysctl("net.ipv4.conf.all.arp_ignore", "1");
                ns.sysctl("net.ipv4.conf.all.arp_announce", "2");
                add_addr(ns, "eth0", &format!("{}/24", spec.v4));
                add_addr(ns, "eth0", &format!("{}/64", spec.v6));
                Node { spec: *spec, host }
            })
            .collect();
        Network {
            router,
            client,
            nodes,
            _lab: lab,
        }
    }

    /// The node named `name` (panics when there is none).
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.spec.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Adds one more host on the lab's bridge (`eth0` with MAC `mac`, no
    /// address), e.g. the API server's in cluster mode. Drop it before
    /// the network.
    pub fn host(&self, role: &str, mac: &str) -> Host {
        self._lab.host(role, mac)
    }

    /// Cuts a node's link: `ip link set eth0 down` in its namespace.
    pub fn cut_link(&self, name: &str) {
        self.node(name).host.ns.ip(&["link", "set", "eth0", "down"]);
    }

    /// Brings a cut link back: `ip link set eth0 up` (the addresses stay).
    pub fn restore_link(&self, name: &str) {
        self.node(name).host.ns.ip(&["link", "set", "eth0", "up"]);
    }

    /// Partitions the LAN between node `name` and the `others`: an
    /// nftables table in `name`'s namespace drops every packet from and
    /// to their addresses (both families); the client and the router
    /// still reach every node. [`heal`](Self::heal) removes it.
    pub fn partition(&self, name: &str, others: &[&str]) {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for other in others {
            let spec = self.node(other).spec;
            v4.push(spec.v4);
            v6.push(spec.v6);
        }
        let (v4, v6) = (v4.join(", "), v6.join(", "));
        let rules = format!(
            "table inet ferrolb_partition {{\n\
             chain input {{ type filter hook input priority 0; ip saddr {{ {v4} }} drop; ip6 saddr {{ {v6} }} drop; }}\n\
             chain output {{ type filter hook output priority 0; ip daddr {{ {v4} }} drop; ip6 daddr {{ {v6} }} drop; }}\n\
             }}\n"
        );
        nft(&self.node(name).host.ns, &["-f", "-"], Some(&rules));
    }

    /// Removes [`partition`](Self::partition)'s table from node `name`.
    pub fn heal(&self, name: &str) {
        nft(
            &self.node(name).host.ns,
            &["delete", "table", "inet", "ferrolb_partition"],
            None,
        );
    }

    /// The client as it asks who answers for an address
    /// ([`crate::answerers`]).
    pub fn client_asker(&self) -> crate::answerers::Asker {
        crate::answerers::Asker {
            dev: "eth0".into(),
            mac: CLIENT_MAC.parse().expect("client MAC"),
            v4: CLIENT_V4.parse().expect("client IPv4"),
            v6: CLIENT_V6.parse().expect("client IPv6"),
        }
    }
}

impl Default for Network {
    fn default() -> Self {
        Network::new()
    }
}

// ---------------------------------------------------------------- lab

/// The router daemon a [`SpeakerLab`] runs in the router namespace.
#[derive(Clone, Debug)]
pub enum Router {
    /// No router (layer-2 tests).
    None,
    /// gobgpd, AS [`ROUTER_ASN`], the nodes' IPv4 addresses as neighbours
    /// in AS [`NODE_ASN`] (IPv4 and IPv6 unicast).
    GoBgp,
    /// FRR (zebra, bgpd, bfdd) with this configuration (see [`frr_config`]).
    Frr(FrrConfig),
}

#[derive(Debug)]
enum RouterDaemon<'n> {
    None,
    GoBgp(GoBgp),
    Frr(Frr<'n>),
}

/// The router daemon a lab runs in [`Network::router`] (see [`Router`]),
/// and what it has learnt; stopped on drop.
#[derive(Debug)]
pub struct LabRouter<'n> {
    daemon: RouterDaemon<'n>,
    ns: &'n Netns,
}

impl<'n> LabRouter<'n> {
    /// Starts `router` in `net`'s router namespace.
    pub fn start(net: &'n Network, router: Router) -> LabRouter<'n> {
        let ns = &net.router.ns;
        let daemon = match router {
            Router::None => RouterDaemon::None,
            Router::GoBgp => {
                let neighbors: Vec<GoBgpNeighbor> = NODES
                    .iter()
                    .map(|n| GoBgpNeighbor::new(n.v4, NODE_ASN))
                    .collect();
                RouterDaemon::GoBgp(GoBgp::start(ns, ROUTER_ASN, &neighbors))
            }
            Router::Frr(config) => RouterDaemon::Frr(Frr::start(ns, &config)),
        };
        LabRouter { daemon, ns }
    }

    /// The daemon's log, headed by its name (empty without a router).
    pub fn log(&self) -> String {
        match &self.daemon {
            RouterDaemon::None => String::new(),
            RouterDaemon::GoBgp(g) => format!("--- gobgpd ---\n{}", g.log()),
            RouterDaemon::Frr(f) => format!("--- FRR ---\n{}", f.log()),
        }
    }

    /// GoBGP (panics when the router is another or none).
    pub fn gobgp(&mut self) -> &mut GoBgp {
        match &mut self.daemon {
            RouterDaemon::GoBgp(g) => g,
            other => panic!("the lab's router is not GoBGP: {other:?}"),
        }
    }

    /// FRR (panics when the router is another or none).
    pub fn frr(&mut self) -> &mut Frr<'n> {
        match &mut self.daemon {
            RouterDaemon::Frr(f) => f,
            other => panic!("the lab's router is not FRR: {other:?}"),
        }
    }

    /// The next hops GoBGP has for `prefix` (IPv4), sorted, and the
    /// attributes of the first path.
    pub fn gobgp_paths(&mut self, prefix: &str) -> (Vec<String>, Value) {
        let ns = self.ns;
        let rib = self.gobgp().rib(ns, "ipv4");
        let paths = rib.get(prefix).unwrap_or(&Value::Null);
        let attrs = paths
            .as_array()
            .and_then(|p| p.first())
            .map(|p| p["attrs"].clone())
            .unwrap_or(Value::Null);
        (gobgp_next_hops(paths), attrs)
    }

    /// FRR's paths of `prefix` (`show bgp ipv4|ipv6 unicast PREFIX json`;
    /// each with `nexthops`, `community`, `largeCommunity`, `locPrf`,
    /// `multipath`, …), empty when FRR has no such route.
    pub fn frr_paths(&mut self, prefix: &str) -> Vec<Value> {
        self.frr().route(prefix)["paths"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The next hops the router has for `prefix`, sorted (GoBGP: IPv4
    /// only; FRR: either family; no router: none).
    pub fn next_hops(&mut self, prefix: &str) -> Vec<String> {
        match self.daemon {
            RouterDaemon::None => Vec::new(),
            RouterDaemon::GoBgp(_) => self.gobgp_paths(prefix).0,
            RouterDaemon::Frr(_) => self.frr().next_hops(prefix),
        }
    }
}

/// The speakers over a [`Network`]: see the module documentation.
#[derive(Debug)]
pub struct SpeakerLab<'n> {
    // Drop order: speakers, router, greeters, directory.
    speakers: Vec<Speaker>,
    router: LabRouter<'n>,
    _greeters: Vec<Greeter>,
    dir: tempfile::TempDir,
    net: &'n Network,
    /// Extra arguments of every speaker (kept for restarts).
    speaker_args: Vec<String>,
}

impl<'n> SpeakerLab<'n> {
    /// Writes `files` (`(file name, YAML)`, e.g. `config.yaml`,
    /// `services.yaml`, `endpointslices.yaml`) into a new directory, plus
    /// `nodes.yaml` ([`nodes_yaml`] with every node Ready) unless `files`
    /// has one; runs the controller once; puts every assigned IP on each
    /// node's `lo` with a greeter; starts `router` and a speaker per node.
    pub fn start(net: &'n Network, files: &[(&str, &str)], router: Router) -> SpeakerLab<'n> {
        SpeakerLab::start_with_args(net, files, router, &[])
    }

    /// [`start`](Self::start), every speaker (also after
    /// [`restart_speaker`](Self::restart_speaker)) with `speaker_args`
    /// added, e.g. `--membership-profile fast`.
    pub fn start_with_args(
        net: &'n Network,
        files: &[(&str, &str)],
        router: Router,
        speaker_args: &[&str],
    ) -> SpeakerLab<'n> {
        let speaker_args: Vec<String> = speaker_args.iter().map(|a| (*a).to_owned()).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("writing a lab file");
        }
        if !files.iter().any(|(name, _)| *name == "nodes.yaml") {
            std::fs::write(dir.path().join("nodes.yaml"), nodes_yaml(&[])).expect("nodes");
        }
        run_controller(dir.path());
        let ips: Vec<String> = assignments(dir.path())
            .into_iter()
            .flat_map(|(_, ips)| ips)
            .fold(Vec::new(), |mut all, ip| {
                if !all.contains(&ip) {
                    all.push(ip);
                }
                all
            });
        let mut greeters = Vec::new();
        for node in &net.nodes {
            let ns = &node.host.ns;
            for ip in &ips {
                let len = if ip.contains(':') { 128 } else { 32 };
                add_addr(ns, "lo", &format!("{ip}/{len}"));
                let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
                greeters.push(Greeter::start(ns, addr, node.spec.name));
            }
        }
        let router = LabRouter::start(net, router);
        let speakers = net
            .nodes
            .iter()
            .map(|n| Speaker::start_with(&n.host.ns, dir.path(), n.spec.name, &speaker_args))
            .collect();
        SpeakerLab {
            speakers,
            router,
            _greeters: greeters,
            dir,
            net,
            speaker_args,
        }
    }

    /// The directory the controller and speakers work over.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The namespaces.
    pub fn net(&self) -> &'n Network {
        self.net
    }

    /// Writes (replaces) `name` in the directory; the speakers pick it up
    /// within their poll interval.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("writing a lab file");
    }

    /// The speaker of node `name`.
    pub fn speaker(&mut self, name: &str) -> &mut Speaker {
        let index = self
            .net
            .nodes
            .iter()
            .position(|n| n.spec.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        &mut self.speakers[index]
    }

    /// Restarts node `name`'s speaker as an orchestrator would: SIGTERM
    /// (it drains, then stops), then a new process with the same
    /// arguments. The old process's log is kept as `speaker-NODE.log.N`
    /// (N = 1, 2, …) and shown by [`logs`](Self::logs). Returns the old
    /// process's exit status.
    pub fn restart_speaker(&mut self, name: &str) -> ExitStatus {
        let status = self.speaker(name).terminate();
        self.respawn_speaker(name);
        status
    }

    /// Starts node `name`'s speaker again after [`Speaker::kill`] (kill
    /// -9: the crash an orchestrator restarts after), with the same
    /// arguments; the killed process's log is kept as in
    /// [`restart_speaker`](Self::restart_speaker). Panics when that
    /// speaker still runs.
    pub fn start_speaker_again(&mut self, name: &str) {
        assert!(
            self.speaker(name).child.is_none(),
            "the speaker of {name} still runs: kill it first"
        );
        self.respawn_speaker(name);
    }

    /// Keeps node `name`'s log as `speaker-NODE.log.N` and starts a new
    /// speaker there (the old process has exited).
    fn respawn_speaker(&mut self, name: &str) {
        let log = self.dir.path().join(format!("speaker-{name}.log"));
        let kept = (1..1000)
            .map(|n| self.dir.path().join(format!("speaker-{name}.log.{n}")))
            .find(|p| !p.exists())
            .expect("fewer than 1000 restarts");
        std::fs::rename(&log, &kept).expect("keeping the speaker's log");
        let ns = &self.net.node(name).host.ns;
        let started = Speaker::start_with(ns, self.dir.path(), name, &self.speaker_args);
        *self.speaker(name) = started;
    }

    /// The log of node `name`'s running speaker.
    pub fn speaker_log(&self, name: &str) -> String {
        let index = self
            .net
            .nodes
            .iter()
            .position(|n| n.spec.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        self.speakers[index].log()
    }

    /// Every speaker's log, and the router's, for failure messages.
    pub fn logs(&self) -> String {
        let mut text: String = self
            .speakers
            .iter()
            .zip(&self.net.nodes)
            .map(|(s, n)| {
                let name = n.spec.name;
                let earlier: String = (1..1000)
                    .map_while(|i| {
                        let path = self.dir.path().join(format!("speaker-{name}.log.{i}"));
                        let text = std::fs::read_to_string(path).ok()?;
                        Some(format!("--- speaker {name}, run {i} ---\n{text}"))
                    })
                    .collect();
                format!("{earlier}--- speaker {name} ---\n{}", s.log())
            })
            .collect();
        text += &self.router.log();
        text
    }

    /// Whether every speaker's last word on each other node (its log's
    /// `membership: NODE (ADDR) is up|down` lines) is "up".
    pub fn all_members_up(&self) -> bool {
        NODES.iter().all(|n| {
            let log = self.speaker_log(n.name);
            NODES.iter().filter(|m| m.name != n.name).all(|m| {
                let about = format!("membership: {} (", m.name);
                log.lines()
                    .rev()
                    .find(|l| {
                        l.contains(&about) && (l.contains(") is up") || l.contains(") is down"))
                    })
                    .is_some_and(|l| l.contains(") is up"))
            })
        })
    }

    /// The `SpeakerStatus` of node `name` (see [`speaker_status`]).
    pub fn status(&self, name: &str) -> Value {
        speaker_status(self.dir.path(), name)
    }

    /// The nodes whose status file says they answer for `ip` on layer 2.
    pub fn l2_owners(&self, ip: &str) -> Vec<&'static str> {
        self.net
            .nodes
            .iter()
            .filter(|n| {
                let path = self
                    .dir
                    .path()
                    .join(format!("status/speaker-{}.yaml", n.spec.name));
                status_announces_l2(&std::fs::read_to_string(path).unwrap_or_default(), ip)
            })
            .map(|n| n.spec.name)
            .collect()
    }

    /// The MAC of node `name`.
    pub fn mac_of(&self, name: &str) -> &'static str {
        self.net.node(name).spec.mac
    }

    /// The node whose MAC is `mac`, if any.
    pub fn node_with_mac(&self, mac: &str) -> Option<&'static str> {
        self.net
            .nodes
            .iter()
            .find(|n| n.spec.mac.eq_ignore_ascii_case(mac))
            .map(|n| n.spec.name)
    }

    /// The GoBGP router (panics when the lab runs another or none).
    pub fn gobgp(&mut self) -> &mut GoBgp {
        self.router.gobgp()
    }

    /// The FRR router (panics when the lab runs another or none).
    pub fn frr(&mut self) -> &mut Frr<'n> {
        self.router.frr()
    }

    /// The router and what it learnt.
    pub fn router(&mut self) -> &mut LabRouter<'n> {
        &mut self.router
    }

    /// See [`LabRouter::gobgp_paths`].
    pub fn gobgp_paths(&mut self, prefix: &str) -> (Vec<String>, Value) {
        self.router.gobgp_paths(prefix)
    }

    /// See [`LabRouter::frr_paths`].
    pub fn frr_paths(&mut self, prefix: &str) -> Vec<Value> {
        self.router.frr_paths(prefix)
    }

    /// See [`LabRouter::next_hops`].
    pub fn next_hops(&mut self, prefix: &str) -> Vec<String> {
        self.router.next_hops(prefix)
    }
}

/// The node that answers for `ip` once the speakers agree: exactly one
/// status file claims it, the client's ping succeeds and the client's
/// neighbour entry holds that node's MAC; None when that does not happen
/// within [`SETTLE`]. (Right after a start the speakers join the
/// membership one after another, and a status file lags the speaker by
/// up to its publishing interval, so the first answers may come from a
/// node that is about to hand the IP over.)
pub fn settled_owner(lab: &SpeakerLab<'_>, ip: &str) -> Option<&'static str> {
    let client = &lab.net().client.ns;
    crate::bgp::wait_until(SETTLE, || {
        let owners = lab.l2_owners(ip);
        if owners.len() != 1 || !ping(client, ip) {
            return None;
        }
        let mac = client.neighbour(ip, "eth0")?;
        (lab.node_with_mac(&mac) == Some(owners[0])).then_some(owners[0])
    })
}
