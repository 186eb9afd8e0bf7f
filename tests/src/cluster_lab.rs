//! The speaker lab in cluster mode: the namespaces of
//! [`crate::speaker_lab`] (three nodes, a client and a router on one
//! bridge) plus an `api` namespace where a real Kubernetes v1.20 control
//! plane runs ([`ControlPlane::start_in`], bound to [`API_V4`]) with
//! `ferrolb-controller`; one `ferrolb-speaker --kubeconfig K --node NAME`
//! per node namespace watches it. There is no kubelet: the lab writes the
//! Node objects (Ready, both InternalIPs) and the test writes the
//! EndpointSlices.
//!
//! ```text
//!   [router] 198.51.100.1  2001:db8::1   GoBGP or FRR, AS 64513 (or nothing)
//!   [client] 198.51.100.2  2001:db8::2
//!   [api]    198.51.100.3                etcd, kube-apiserver, kube-controller-manager, ferrolb-controller
//!   [node1..3] 198.51.100.11-13, 2001:db8::11-13   ferrolb-speaker, AS 64512
//! ```
//!
//! The controller and the speakers authenticate as their service accounts
//! with exactly the RBAC of `deploy/rbac/`; the install's namespace and
//! CRDs come from `deploy/` too.
//!
//! Two parts, as in the standalone lab: [`ClusterNetwork`] (the
//! namespaces) and [`Cluster`] over it (control plane, controller,
//! router, speakers, and on every node each assigned Service IP on `lo`
//! with a TCP [`Greeter`] answering with the node's name). Every wait is
//! bounded ([`SETTLE`]); everything stops on drop (speakers, controller,
//! router, greeters, control plane, then the namespaces). Addresses are
//! documentation ones only, inside namespaces the lab creates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::bgp::wait_until;
use crate::control_plane::ControlPlane;
use crate::netns::{Greeter, Host};
use crate::routers::Frr;
use crate::speaker::{controller_binary, speaker_binary};
use crate::speaker_lab::{
    self, LabRouter, NODES, Network, NodeSpec, Router, Speaker, add_addr, ping,
};

/// What every cluster lab needs, for [`crate::require`] (add the router's:
/// [`speaker_lab::GOBGP_TOOLS`], [`Frr::TOOLS`]); the API server's binaries
/// come from `tests/apiserver/build-binaries.sh`.
pub const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
    ("etcd", "etcd-server"),
    ("curl", "curl"),
];

/// The API server's address (in the `api` namespace).
pub const API_V4: &str = "198.51.100.3";
/// The `api` namespace's MAC.
pub const API_MAC: &str = "02:f1:0c:00:00:03";
/// Bound of every wait for the control plane and the daemons to converge.
pub const SETTLE: Duration = Duration::from_secs(30);

/// The namespaces of a cluster lab: [`Network`] and the `api` host.
#[derive(Debug)]
pub struct ClusterNetwork {
    /// Where the control plane and the controller run.
    pub api: Host,
    /// Router, client and nodes (dropped after `api`).
    pub net: Network,
}

impl ClusterNetwork {
    /// Creates the namespaces (needs root: see [`network`]).
    pub fn new() -> ClusterNetwork {
        let net = Network::new();
        let api = net.host("api", API_MAC);
        add_addr(&api.ns, "eth0", &format!("{API_V4}/24"));
        ClusterNetwork { api, net }
    }
}

impl Default for ClusterNetwork {
    fn default() -> Self {
        ClusterNetwork::new()
    }
}

/// The namespaces, when root, [`TOOLS`] and `extra` are there; else
/// `None` after `SKIPPED: …` (a failure under `CI`).
pub fn network(extra: &[(&'static str, &'static str)]) -> Option<ClusterNetwork> {
    let tools: Vec<(&str, &str)> = TOOLS.iter().chain(extra).copied().collect();
    crate::require(&tools).then(ClusterNetwork::new)
}

/// A Node object of the lab: Ready, with both InternalIPs.
pub fn node_object(node: &NodeSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [
                {"type": "InternalIP", "address": node.v4},
                {"type": "InternalIP", "address": node.v6},
            ],
        },
    })
}

/// The `status.loadBalancer.ingress` IPs of a Service object.
pub fn ingress_ips(service: &Value) -> Vec<String> {
    service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().map(str::to_owned))
        .collect()
}

/// A v1beta1 EndpointSlice (what Kubernetes 1.20 serves) of Service
/// `namespace/service` named `name`, with one ready endpoint `address` on
/// `node` (`topology: kubernetes.io/hostname`, as the 1.20
/// EndpointSlice controller writes it), port 8080.
pub fn endpoint_slice_v1beta1(
    namespace: &str,
    service: &str,
    name: &str,
    address: &str,
    node: &str,
) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\n\
         metadata:\n  name: {name}\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: {service}}}\n\
         addressType: IPv4\n\
         endpoints:\n- addresses: [\"{address}\"]\n  conditions: {{ready: true}}\n  topology: {{kubernetes.io/hostname: {node}}}\n\
         ports: [{{port: 8080, protocol: TCP}}]\n"
    )
}

/// The control plane, controller, router and speakers over a
/// [`ClusterNetwork`]: see the module documentation.
#[derive(Debug)]
pub struct Cluster<'n> {
    // Drop order: speakers, controller, router, greeters, control plane,
    // logs.
    speakers: Vec<Speaker>,
    controller: Speaker,
    router: LabRouter<'n>,
    greeters: Vec<Greeter>,
    cp: ControlPlane<'n>,
    logs: tempfile::TempDir,
    net: &'n ClusterNetwork,
    /// The speakers' kubeconfig (kept for restarts).
    speaker_kubeconfig: String,
}

impl<'n> Cluster<'n> {
    /// Starts the control plane in the `api` namespace; applies
    /// `deploy/namespace.yaml`, `deploy/crds.yaml`, `deploy/rbac/`, the
    /// Node objects and `objects` (the test's configuration, Services and
    /// EndpointSlices, YAML); starts the controller and waits until every
    /// LoadBalancer Service has its IPs; puts them on each node's `lo` with
    /// a greeter; starts `router` and a speaker per node.
    pub fn start(net: &'n ClusterNetwork, objects: &str, router: Router) -> Cluster<'n> {
        let cp = ControlPlane::start_in(&net.api.ns, API_V4);
        cp.apply_file("deploy/namespace.yaml");
        cp.apply_file("deploy/crds.yaml");
        cp.wait_crds();
        cp.apply_file("deploy/rbac/");
        for node in &NODES {
            let object = node_object(node);
            cp.apply(&object.to_string());
            // Created without its status: write it (as a kubelet would).
            cp.replace_status(&format!("/api/v1/nodes/{}/status", node.name), &object);
        }
        cp.apply(objects);
        let logs = tempfile::Builder::new()
            .prefix("ferrolb-cluster-lab-")
            .tempdir()
            .expect("temp dir");
        let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_owned();
        let controller_kc =
            path(cp.service_account_kubeconfig("ferrolb-system", "ferrolb-controller"));
        let speaker_kc = path(cp.service_account_kubeconfig("ferrolb-system", "ferrolb-speaker"));
        let controller = Speaker::spawn(
            &net.api.ns,
            &controller_binary(),
            &[
                "--kubeconfig",
                &controller_kc,
                "--identity",
                "c1",
                "--metrics-addr",
                "127.0.0.1:7472",
            ],
            logs.path().join("controller.log"),
        );
        let ips = wait_until(SETTLE, || {
            let list = cp.json(&["get", "services", "-A"]);
            let services: Vec<&Value> = list["items"]
                .as_array()?
                .iter()
                .filter(|s| s["spec"]["type"] == "LoadBalancer")
                .collect();
            let mut ips = Vec::new();
            for s in services {
                let mine = ingress_ips(s);
                if mine.is_empty() {
                    return None;
                }
                ips.extend(mine);
            }
            Some(ips)
        })
        .unwrap_or_else(|| {
            panic!(
                "not every LoadBalancer Service got an IP within {SETTLE:?}:\n{}\n--- controller ---\n{}",
                cp.ok(&["get", "services", "-A"]),
                controller.log()
            )
        });
        let mut greeters = Vec::new();
        for node in &net.net.nodes {
            for ip in &ips {
                greeters.push(serve(&node.host, node.spec.name, ip));
            }
        }
        let router = LabRouter::start(&net.net, router);
        let speakers = net
            .net
            .nodes
            .iter()
            .map(|n| {
                Speaker::spawn(
                    &n.host.ns,
                    &speaker_binary(),
                    &["--kubeconfig", &speaker_kc, "--node", n.spec.name],
                    logs.path().join(format!("speaker-{}.log", n.spec.name)),
                )
            })
            .collect();
        Cluster {
            speakers,
            controller,
            router,
            greeters,
            cp,
            logs,
            net,
            speaker_kubeconfig: speaker_kc,
        }
    }

    /// The control plane (kubectl as cluster admin).
    pub fn cp(&self) -> &ControlPlane<'n> {
        &self.cp
    }

    /// The namespaces.
    pub fn net(&self) -> &'n ClusterNetwork {
        self.net
    }

    /// The client's namespace.
    pub fn client(&self) -> &'n crate::netns::Netns {
        &self.net.net.client.ns
    }

    /// The speaker of node `name`.
    pub fn speaker(&mut self, name: &str) -> &mut Speaker {
        let index = NODES
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        &mut self.speakers[index]
    }

    /// Starts node `name`'s speaker again after [`Speaker::kill`] (kill
    /// -9; killed first if it still runs), with the same arguments; the
    /// old process's log is kept as `speaker-NODE.log.N` in
    /// [`log_dir`](Self::log_dir).
    pub fn start_speaker_again(&mut self, name: &str) {
        self.speaker(name).kill();
        let log = self.logs.path().join(format!("speaker-{name}.log"));
        let kept = (1..1000)
            .map(|n| self.logs.path().join(format!("speaker-{name}.log.{n}")))
            .find(|p| !p.exists())
            .expect("fewer than 1000 restarts");
        std::fs::rename(&log, &kept).expect("keeping the speaker's log");
        let ns = &self.net.net.node(name).host.ns;
        let started = Speaker::spawn(
            ns,
            &speaker_binary(),
            &["--kubeconfig", &self.speaker_kubeconfig, "--node", name],
            log,
        );
        *self.speaker(name) = started;
    }

    /// The router and what it learnt.
    pub fn router(&mut self) -> &mut LabRouter<'n> {
        &mut self.router
    }

    /// The FRR router (panics when the lab runs another or none).
    pub fn frr(&mut self) -> &mut Frr<'n> {
        self.router.frr()
    }

    /// The next hops the router has for `prefix`, sorted.
    pub fn next_hops(&mut self, prefix: &str) -> Vec<String> {
        self.router.next_hops(prefix)
    }

    /// Puts `ip` on every node's `lo` with a greeter (for a Service made
    /// after the start).
    pub fn serve(&mut self, ip: &str) {
        for node in &self.net.net.nodes {
            self.greeters.push(serve(&node.host, node.spec.name, ip));
        }
    }

    /// Every speaker's log, the controller's and the router's, for
    /// failure messages.
    pub fn logs(&self) -> String {
        let mut text: String = self
            .speakers
            .iter()
            .zip(&NODES)
            .map(|(s, n)| format!("--- speaker {} ---\n{}", n.name, s.log()))
            .collect();
        text += &format!("--- controller ---\n{}", self.controller.log());
        text += &self.router.log();
        text
    }

    /// Where the daemons' logs are.
    pub fn log_dir(&self) -> &std::path::Path {
        self.logs.path()
    }

    /// The IPs of Service `namespace/name` (its status).
    pub fn service_ips(&self, namespace: &str, name: &str) -> Vec<String> {
        ingress_ips(&self.cp.json(&["-n", namespace, "get", "service", name]))
    }

    /// The single IPv4 address of Service `default/name` (panics
    /// otherwise).
    pub fn single_v4(&self, name: &str) -> String {
        let ips = self.service_ips("default", name);
        match ips.as_slice() {
            [ip] if !ip.contains(':') => ip.clone(),
            _ => panic!("default/{name}: {ips:?}, not one IPv4 address"),
        }
    }

    /// The nodes the ServiceL2Status objects of Service `service` name,
    /// sorted.
    pub fn l2_status_nodes(&self, service: &str) -> Vec<String> {
        let list = self.cp.json(&["get", "servicel2statuses", "-A"]);
        let mut nodes: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["status"]["serviceName"] == service)
            .filter_map(|o| o["status"]["node"].as_str().map(str::to_owned))
            .collect();
        nodes.sort();
        nodes
    }

    /// The node that answers for `ip` of Service `service` once the
    /// speakers agree: exactly one ServiceL2Status names it, the client's
    /// ping succeeds and its neighbour entry holds that node's MAC. None
    /// when that does not happen within [`SETTLE`] (right after a start
    /// the speakers join the membership one after another, and the status
    /// objects lag them a little).
    pub fn settled_owner(&self, service: &str, ip: &str) -> Option<&'static str> {
        let client = self.client();
        wait_until(SETTLE, || {
            let owners = self.l2_status_nodes(service);
            if owners.len() != 1 || !ping(client, ip) {
                return None;
            }
            let mac = client.neighbour(ip, "eth0")?;
            let node = node_with_mac(&mac)?;
            (node == owners[0]).then_some(node)
        })
    }

    /// The core/v1 Events in `namespace` about object `name` with this
    /// reason, oldest first.
    pub fn events(&self, namespace: &str, name: &str, reason: &str) -> Vec<Value> {
        let list = self.cp.json(&["-n", namespace, "get", "events"]);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
            .cloned()
            .collect()
    }

    /// Waits (bounded by [`SETTLE`]) for an Event about `namespace/name`
    /// with this reason whose message contains `text`.
    pub fn wait_event(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        text: &str,
    ) -> Option<Value> {
        wait_until(SETTLE, || {
            self.events(namespace, name, reason).into_iter().find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.to_lowercase().contains(&text.to_lowercase()))
            })
        })
    }

    /// `status.sessions` of BGPPeer `name` (one per node: `node`, `state`,
    /// `bfdState`, …).
    pub fn peer_sessions(&self, name: &str) -> Vec<Value> {
        let peer = self
            .cp
            .json(&["-n", "ferrolb-system", "get", "bgppeer", name]);
        peer["status"]["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Puts `ip` on `host`'s `lo` and starts a greeter answering `name` on it.
fn serve(host: &Host, name: &str, ip: &str) -> Greeter {
    let len = if ip.contains(':') { 128 } else { 32 };
    add_addr(&host.ns, "lo", &format!("{ip}/{len}"));
    let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), speaker_lab::TCP_PORT);
    Greeter::start(&host.ns, addr, name)
}

/// The node whose MAC is `mac`, if any.
pub fn node_with_mac(mac: &str) -> Option<&'static str> {
    NODES
        .iter()
        .find(|n| n.mac.eq_ignore_ascii_case(mac))
        .map(|n| n.name)
}

/// The MAC of node `name`.
pub fn mac_of(name: &str) -> &'static str {
    NODES
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
        .mac
}
