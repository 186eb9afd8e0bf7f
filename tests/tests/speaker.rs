//! End-to-end tests of the speaker daemon in standalone mode: the
//! controller (`ferrolb-controller --standalone DIR --once`) assigns IPs,
//! and `ferrolb-speaker --standalone DIR --node NAME` runs in each of three
//! node namespaces; a client and a GoBGP router share the LAN.
//!
//! ```text
//!   [router] eth0 198.51.100.1/24 2001:db8::1/64  gobgpd AS 64513
//!   [client] eth0 198.51.100.2/24 2001:db8::2/64
//!   [node1]  eth0 198.51.100.11   2001:db8::11     speaker, AS 64512
//!   [node2]  eth0 198.51.100.12   2001:db8::12     speaker
//!   [node3]  eth0 198.51.100.13   2001:db8::13     speaker
//!         \________ br0 in its own namespace ________/
//!   layer-2 pool 198.51.100.100-119, 2001:db8::100-119; BGP pool 203.0.113.0/28
//! ```
//!
//! Each node holds the Service IPs on `lo` (with arp_ignore/arp_announce
//! so its kernel never answers ARP for them) and a TCP listener that
//! greets with the node's name, so the client can tell who answered.
//! Needs root, `ip`, `ping`, `gobgpd`/`gobgp`: without them each test
//! prints `SKIPPED: …` (fails when `CI` is set).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{GoBgp, GoBgpNeighbor, wait_until};
use ferrolb_e2e::netns::{Greeter, Host, Lab, Netns, tcp_fetch};
use ferrolb_e2e::speaker::{controller_binary, speaker_binary};
use serde_json::Value;

const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
    ("gobgpd", "gobgpd"),
    ("gobgp", "gobgpd"),
];

const TCP_PORT: u16 = 8080;
const NODES: [(&str, &str, &str, &str); 3] = [
    (
        "node1",
        "02:f1:0c:00:00:11",
        "198.51.100.11",
        "2001:db8::11",
    ),
    (
        "node2",
        "02:f1:0c:00:00:12",
        "198.51.100.12",
        "2001:db8::12",
    ),
    (
        "node3",
        "02:f1:0c:00:00:13",
        "198.51.100.13",
        "2001:db8::13",
    ),
];
/// Bound of every wait for the daemons to converge.
const SETTLE: Duration = Duration::from_secs(15);

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.100-198.51.100.119, 2001:db8::100-2001:db8::119]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 198.51.100.1
  holdTime: 9s
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
  communities: ["64512:100", "large:64512:1:2"]
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "e2e-test-key-0123456789abcdef"}
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: routed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
"#;

fn nodes_yaml(not_ready: &[&str]) -> String {
    NODES
        .iter()
        .map(|(name, _, v4, v6)| {
            let ready = if not_ready.contains(name) { "False" } else { "True" };
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus:\n  conditions: [{{type: Ready, status: \"{ready}\"}}]\n  addresses: [{{type: InternalIP, address: {v4}}}, {{type: InternalIP, address: \"{v6}\"}}]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A speaker process in a node namespace; killed on drop.
struct Speaker {
    child: Option<Child>,
    log: PathBuf,
}

impl Speaker {
    fn start(ns: &Netns, dir: &Path, node: &str) -> Speaker {
        let log = dir.join(format!("speaker-{node}.log"));
        let file = std::fs::File::create(&log).expect("speaker log");
        let child = ns
            .command(speaker_binary())
            .args(["--standalone", dir.to_str().expect("utf-8"), "--node", node])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .spawn()
            .expect("spawning ferrolb-speaker");
        Speaker {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (bounded: 10 s, then SIGKILL and panic).
    fn terminate(&mut self) -> std::process::ExitStatus {
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Node {
    name: &'static str,
    mac: &'static str,
    host: Host,
    _greeters: Vec<Greeter>,
}

struct TestLab {
    // Drop order: processes, then hosts, then the bridge.
    speakers: Vec<Speaker>,
    gobgp: GoBgp,
    nodes: Vec<Node>,
    client: Host,
    router: Host,
    dir: tempfile::TempDir,
    _lab: Lab,
}

fn add_addr(ns: &Netns, dev: &str, addr: &str) {
    let mut args = vec!["addr", "add", addr, "dev", dev];
    if addr.contains(':') {
        args.push("nodad");
    }
    ns.ip(&args);
}

fn run_controller(dir: &Path) {
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

/// Service name → its assigned IPs, from `status/services.yaml`.
fn assigned(dir: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("status/services.yaml")).expect("services.yaml");
    let needle = format!("name: {name}\n");
    let doc = text
        .split("\n---")
        .find(|d| d.contains(&needle))
        .unwrap_or_else(|| panic!("{name} not in services.yaml:\n{text}"));
    doc.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("- ip: ")
                .or_else(|| l.trim().strip_prefix("ip: "))
        })
        .map(|s| s.trim_matches('"').trim_matches('\'').to_string())
        .collect()
}

/// Builds the lab, writes the configuration, runs the controller, starts
/// GoBGP and a speaker per node. None when prerequisites are missing.
fn lab() -> Option<TestLab> {
    if !ferrolb_e2e::require(TOOLS) {
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), CONFIG).expect("config");
    std::fs::write(dir.path().join("nodes.yaml"), nodes_yaml(&[])).expect("nodes");
    std::fs::write(dir.path().join("services.yaml"), SERVICES).expect("services");
    run_controller(dir.path());
    let web = assigned(dir.path(), "web");
    let routed = assigned(dir.path(), "routed");
    assert_eq!(web.len(), 2, "{web:?}");
    assert_eq!(routed.len(), 1, "{routed:?}");

    let lab = Lab::new();
    let router = lab.host("router", "02:f1:0c:00:00:01");
    add_addr(&router.ns, "eth0", "198.51.100.1/24");
    add_addr(&router.ns, "eth0", "2001:db8::1/64");
    let client = lab.host("client", "02:f1:0c:00:00:02");
    add_addr(&client.ns, "eth0", "198.51.100.2/24");
    add_addr(&client.ns, "eth0", "2001:db8::2/64");
    let mut nodes = Vec::new();
    for (name, mac, v4, v6) in NODES {
        let host = lab.host(name, mac);
        let ns = &host.ns;
        ns.sysctl("net.ipv4.conf.all.arp_ignore", "1");
        ns.sysctl("net.ipv4.conf.all.arp_announce", "2");
        add_addr(ns, "eth0", &format!("{v4}/24"));
        add_addr(ns, "eth0", &format!("{v6}/64"));
        let mut greeters = Vec::new();
        for ip in web.iter().chain(&routed) {
            let len = if ip.contains(':') { 128 } else { 32 };
            add_addr(ns, "lo", &format!("{ip}/{len}"));
            let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
            greeters.push(Greeter::start(ns, addr, name));
        }
        nodes.push(Node {
            name,
            mac,
            host,
            _greeters: greeters,
        });
    }
    let neighbors: Vec<GoBgpNeighbor> = NODES
        .iter()
        .map(|(_, _, v4, _)| GoBgpNeighbor::new(v4, 64512))
        .collect();
    let gobgp = GoBgp::start(&router.ns, 64513, &neighbors);
    let speakers = nodes
        .iter()
        .map(|n| Speaker::start(&n.host.ns, dir.path(), n.name))
        .collect();
    Some(TestLab {
        speakers,
        gobgp,
        nodes,
        client,
        router,
        dir,
        _lab: lab,
    })
}

impl TestLab {
    fn logs(&self) -> String {
        self.speakers
            .iter()
            .zip(&self.nodes)
            .map(|(s, n)| format!("--- {} ---\n{}", n.name, s.log()))
            .collect()
    }

    /// The nodes whose status file says they answer for `ip` on layer 2.
    fn l2_owners(&self, ip: &str) -> Vec<&'static str> {
        self.nodes
            .iter()
            .filter(|n| {
                let path = self
                    .dir
                    .path()
                    .join(format!("status/speaker-{}.yaml", n.name));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                status_announces_l2(&text, ip)
            })
            .map(|n| n.name)
            .collect()
    }

    fn mac_of(&self, node: &str) -> &'static str {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .expect("node")
            .mac
    }

    /// The next hops GoBGP has for `prefix` (IPv4), sorted, and the
    /// communities of the first path.
    fn router_paths(&mut self, prefix: &str) -> (Vec<String>, Value) {
        let rib = self.gobgp.rib(&self.router.ns, "ipv4");
        let paths = rib
            .get(prefix)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut hops: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                p["attrs"].as_array()?.iter().find(|a| a["type"] == 3)?["nexthop"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        hops.sort();
        let attrs = paths
            .first()
            .map(|p| p["attrs"].clone())
            .unwrap_or(Value::Null);
        (hops, attrs)
    }
}

/// Whether a speaker status file lists `ip` as announced on layer 2 here.
fn status_announces_l2(text: &str, ip: &str) -> bool {
    let Some(doc) = text
        .split("\n---")
        .find(|d| d.contains("kind: SpeakerStatus"))
    else {
        return false;
    };
    let Ok(value) = serde_saphyr::from_str::<Value>(doc) else {
        return false;
    };
    value["status"]["announced"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["ip"] == ip && e["layer2"] == true))
}

fn ping(ns: &Netns, ip: &str) -> bool {
    let family = if ip.contains(':') { "-6" } else { "-4" };
    ns.exec(
        "ping",
        &[family, "-c", "1", "-W", "1", ip],
        Duration::from_secs(5),
    )
    .status
    .success()
}

fn greeting(ns: &Netns, ip: &str) -> Result<String, String> {
    let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
    tcp_fetch(ns, addr, Duration::from_secs(3))
}

/// Waits until the client's neighbour entries for `ips` all hold a MAC
/// other than `old_mac`, polling every 2 ms (bounded by [`SETTLE`]);
/// returns the time it took and the new MACs.
fn wait_moved(client: &Netns, ips: &[String], old_mac: &str) -> Option<(Duration, Vec<String>)> {
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

/// Layer-2 failover with the membership: the owner's speaker is killed
/// (kill -9: no goodbye), then the next owner's link is cut; each time the
/// client's neighbour entries move to a live node without the client
/// asking, and a new TCP connection reaches it.
#[test]
fn layer2_failover_on_kill_and_link_cut() {
    let Some(mut lab) = lab() else { return };
    let web = assigned(lab.dir.path(), "web");
    // Both IPs of one Service may have different owners; follow the IPv4 one.
    let v4 = web
        .iter()
        .find(|ip| !ip.contains(':'))
        .expect("IPv4")
        .clone();
    let owner = wait_until(SETTLE, || {
        let o = lab.l2_owners(&v4);
        (o.len() == 1).then(|| o[0])
    })
    .unwrap_or_else(|| panic!("no single owner for {v4}:\n{}", lab.logs()));
    let status =
        std::fs::read_to_string(lab.dir.path().join(format!("status/speaker-{owner}.yaml")))
            .unwrap_or_default();
    assert!(
        status.contains("running on UDP 198.51.100."),
        "membership not running:\n{status}"
    );
    let client = &lab.client.ns;
    assert!(wait_until(SETTLE, || ping(client, &v4).then_some(())).is_some());
    assert_eq!(
        client.neighbour(&v4, "eth0").as_deref(),
        Some(lab.mac_of(owner))
    );

    // kill -9 the owner's speaker.
    let idx = lab
        .nodes
        .iter()
        .position(|n| n.name == owner)
        .expect("owner");
    lab.speakers[idx].kill();
    let (took, macs) = wait_moved(&lab.client.ns, std::slice::from_ref(&v4), lab.mac_of(owner))
        .unwrap_or_else(|| {
            panic!(
                "{v4} did not move after kill -9 of {owner}:\n{}",
                lab.logs()
            )
        });
    println!(
        "kill -9 of {owner}'s speaker: {v4} moved to {} after {took:?}",
        macs[0]
    );
    let second = lab
        .nodes
        .iter()
        .find(|n| n.mac == macs[0])
        .expect("a node's MAC")
        .name;
    assert_ne!(second, owner);
    assert_eq!(greeting(&lab.client.ns, &v4).as_deref(), Ok(second));

    // Cut the new owner's link.
    let idx2 = lab
        .nodes
        .iter()
        .position(|n| n.name == second)
        .expect("second");
    lab.nodes[idx2].host.ns.ip(&["link", "set", "eth0", "down"]);
    let (took, macs) = wait_moved(
        &lab.client.ns,
        std::slice::from_ref(&v4),
        lab.mac_of(second),
    )
    .unwrap_or_else(|| {
        panic!(
            "{v4} did not move after cutting {second}'s link:\n{}",
            lab.logs()
        )
    });
    println!(
        "link cut on {second}: {v4} moved to {} after {took:?}",
        macs[0]
    );
    let third = lab
        .nodes
        .iter()
        .find(|n| n.mac == macs[0])
        .expect("a node's MAC")
        .name;
    assert!(third != owner && third != second, "{third}");
    assert_eq!(greeting(&lab.client.ns, &v4).as_deref(), Ok(third));
}

/// Layer 2: exactly one node answers each IP of the dual-stack Service;
/// the client reaches it by TCP; when the owner's Node goes NotReady
/// (membership is not running here, so readiness decides) another node
/// takes over and the client's neighbour entries move without asking.
#[test]
fn layer2_owner_answers_and_hands_over() {
    let Some(mut lab) = lab() else { return };
    let web = assigned(lab.dir.path(), "web");
    for ip in &web {
        let owners = wait_until(SETTLE, || {
            let o = lab.l2_owners(ip);
            (o.len() == 1).then_some(o)
        })
        .unwrap_or_else(|| panic!("no single owner for {ip}:\n{}", lab.logs()));
        // Both IPs of one Service are elected independently; each gets one.
        let owner = owners[0];
        let client = &lab.client.ns;
        assert!(
            wait_until(SETTLE, || ping(client, ip).then_some(())).is_some(),
            "ping {ip}:\n{}",
            lab.logs()
        );
        assert_eq!(
            client.neighbour(ip, "eth0").as_deref(),
            Some(lab.mac_of(owner)),
            "{ip}"
        );
        assert_eq!(greeting(client, ip).as_deref(), Ok(owner), "TCP to {ip}");
    }
    // The owner of the IPv4 address goes NotReady.
    let v4 = web
        .iter()
        .find(|ip| !ip.contains(':'))
        .expect("an IPv4")
        .clone();
    let first = lab.l2_owners(&v4)[0];
    std::fs::write(lab.dir.path().join("nodes.yaml"), nodes_yaml(&[first])).expect("nodes");
    let moved = wait_until(SETTLE, || {
        let o = lab.l2_owners(&v4);
        (o.len() == 1 && o[0] != first).then(|| o[0])
    })
    .unwrap_or_else(|| panic!("{v4} did not move off {first}:\n{}", lab.logs()));
    let new_mac = lab.mac_of(moved);
    let client = &lab.client.ns;
    assert!(
        wait_until(SETTLE, || (client.neighbour(&v4, "eth0").as_deref()
            == Some(new_mac))
        .then_some(()))
        .is_some(),
        "the client's entry for {v4} did not move to {moved} ({new_mac}): {:?}\n{}",
        client.neighbour(&v4, "eth0"),
        lab.logs()
    );
    assert_eq!(greeting(client, &v4).as_deref(), Ok(moved));
    // A clean stop exits 0.
    for s in &mut lab.speakers {
        assert!(s.terminate().success());
    }
}

/// BGP: the route of the BGP Service arrives at GoBGP from all three nodes
/// with the advertisement's communities; deleting the Service withdraws it
/// from every node; SIGTERM withdraws a node's routes.
#[test]
fn bgp_routes_from_every_node_and_withdrawals() {
    let Some(mut lab) = lab() else { return };
    let routed = assigned(lab.dir.path(), "routed");
    let prefix = format!("{}/32", routed[0]);
    let all: Vec<String> = {
        let mut v: Vec<String> = NODES.iter().map(|n| n.2.to_string()).collect();
        v.sort();
        v
    };
    let hops = wait_until(SETTLE, || {
        let (hops, _) = lab.router_paths(&prefix);
        (hops == all).then_some(hops)
    });
    assert!(
        hops.is_some(),
        "{prefix} not from all nodes: {:?}\n{}",
        lab.router_paths(&prefix),
        lab.logs()
    );
    let (_, attrs) = lab.router_paths(&prefix);
    let text = attrs.to_string();
    // COMMUNITIES (type 8): 64512:100 = 4227858532; LARGE_COMMUNITY (32).
    assert!(text.contains("4227858532"), "communities: {text}");
    assert!(
        text.contains(r#""ASN":64512,"LocalData1":1,"LocalData2":2"#),
        "large communities: {text}"
    );
    // The layer-2 Service is not announced over BGP.
    let rib = lab.gobgp.rib(&lab.router.ns, "ipv4");
    assert_eq!(rib.len(), 1, "{rib:?}");

    // SIGTERM on node1: its path goes, the others stay.
    assert!(lab.speakers[0].terminate().success(), "{}", lab.logs());
    let rest: Vec<String> = all[1..].to_vec();
    assert!(
        wait_until(SETTLE, || (lab.router_paths(&prefix).0 == rest)
            .then_some(()))
        .is_some(),
        "after SIGTERM: {:?}",
        lab.router_paths(&prefix)
    );

    // Deleting the Service withdraws it everywhere.
    std::fs::write(
        lab.dir.path().join("services.yaml"),
        SERVICES.split("---").next().expect("web"),
    )
    .expect("services");
    run_controller(lab.dir.path());
    assert!(
        wait_until(SETTLE, || lab
            .router_paths(&prefix)
            .0
            .is_empty()
            .then_some(()))
        .is_some(),
        "not withdrawn: {:?}\n{}",
        lab.router_paths(&prefix),
        lab.logs()
    );
}
